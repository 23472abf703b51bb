import struct NIOConcurrencyHelpers.NIOLockedValueBox

/// Counts the parts of the process that must be bound (the listeners, the admin listener) before it
/// accepts and says it serves; the last one to report runs the action `whenReady` set, once. (The
/// action is set after the parts are made, since it starts them accepting; before the parts run.)
final class Readiness: Sendable {
    private let left: NIOLockedValueBox<(count: Int, action: (@Sendable () -> Void)?)>

    init(parts: Int) {
        self.left = NIOLockedValueBox((parts, nil))
    }

    /// What to run once every part is bound.
    func whenReady(_ action: @escaping @Sendable () -> Void) {
        self.left.withLockedValue { $0.action = action }
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
