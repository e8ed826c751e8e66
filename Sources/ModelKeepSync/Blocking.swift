#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Told when a thread of its pool is about to wait (for the database writer, a disk flush, a
/// slow peer) and when the wait is over, so the pool can put another thread to work meanwhile.
public protocol BlockingObserver: AnyObject, Sendable {
    func willBlock()
    func didUnblock()
}

/// Marks code that may wait a long time on something other than the CPU. On a thread that a
/// pool registered (the HTTP server's workers), the pool hears of it; anywhere else, and
/// inside another blocking region, it only runs the body.
public enum Blocking {
    /// One per registered thread, touched only by that thread.
    private final class Box {
        let observer: any BlockingObserver
        var entered = 0
        init(_ observer: any BlockingObserver) { self.observer = observer }
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Registers `observer` for the calling thread (nil clears it). The pool keeps it alive
    /// while the thread runs; call with nil before the thread exits.
    public static func register(_ observer: (any BlockingObserver)?) {
        if let old = pthread_getspecific(key) {
            Unmanaged<Box>.fromOpaque(old).release()
        }
        let new = observer.map { Unmanaged.passRetained(Box($0)).toOpaque() }
        pthread_setspecific(key, new)
    }

    /// How many blocking regions the calling thread has entered since it was registered
    /// (0 on a thread no pool registered).
    public static var regionsEntered: Int {
        guard let pointer = pthread_getspecific(key) else { return 0 }
        return Unmanaged<Box>.fromOpaque(pointer).takeUnretainedValue().entered
    }

    public static func run<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        guard let pointer = pthread_getspecific(key) else { return try body() }
        let box = Unmanaged<Box>.fromOpaque(pointer).takeUnretainedValue()
        box.entered += 1
        let observer = box.observer
        pthread_setspecific(key, nil)  // a region inside this one tells nobody
        observer.willBlock()
        defer {
            observer.didUnblock()
            pthread_setspecific(key, pointer)
        }
        return try body()
    }
}
