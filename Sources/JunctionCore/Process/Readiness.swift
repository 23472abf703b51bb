import struct NIOConcurrencyHelpers.NIOLockedValueBox

/// Counts the parts of the process that must be bound (the listeners, the admin listener) before it
/// accepts and says it serves; the last one to report runs `whenReady`, once.
final class Readiness: Sendable {
    private let left: NIOLockedValueBox<(count: Int, action: (@Sendable () -> Void)?)>

    init(parts: Int, whenReady: @escaping @Sendable () -> Void) {
        self.left = NIOLockedValueBox((parts, whenReady))
    }

    /// One part is bound.
    func partReady() {
        let action: (@Sendable () -> Void)? = self.left.withLockedValue { left in
            left.count -= 1
            guard left.count <= 0, let action = left.action else { return nil }
            left.action = nil
            return action
        }
        action?()
    }
}
