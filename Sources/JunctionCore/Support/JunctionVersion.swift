/// The release of this build.
public enum JunctionVersion {
    /// Semantic version, printed by `junction version`.
    public static let current = "0.1.0"
}
