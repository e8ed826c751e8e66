import Foundation

/// Waits (checking every 10 ms, at most 10 s) until `condition` holds, for work a test has started
/// on another thread; true if it did.
public func eventually(_ condition: () throws -> Bool) rethrows -> Bool {
    for _ in 0..<1000 {
        if try condition() { return true }
        usleep(10_000)
    }
    return try condition()
}
