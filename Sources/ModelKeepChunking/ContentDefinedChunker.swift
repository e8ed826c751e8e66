/// Cuts a byte stream into content-defined chunks with a gear rolling hash, FastCDC style
/// (Xia et al., "FastCDC", USENIX ATC 2016): no cut before `minimumSize`, a harder mask until
/// `normalSize`, an easier one after it, and a forced cut at `maximumSize`. An edit in the middle
/// of a file changes only the chunks around it, so a fine-tuned checkpoint shares most chunks
/// with its parent.
///
/// The parameters are part of the store's format (clients that chunk the same way upload only
/// what the server lacks), so they are fixed and documented in /openapi.json:
/// - gear table: 256 values of SplitMix64 seeded with `gearSeed`, in order;
/// - hash: `h = (h << 1) &+ gear[byte]`, reset to 0 at each chunk start, fed from byte `minimumSize` on;
/// - cut after the byte where `h & mask == 0`, with `maskBeforeNormal` (the top 22 bits) while
///   the chunk is shorter than `normalSize`, `maskAfterNormal` (the top 18 bits) after.
public struct ContentDefinedChunker: Sendable {
    public static let minimumSize = 256 * 1024
    public static let normalSize = 1024 * 1024
    public static let maximumSize = 4 * 1024 * 1024
    public static let gearSeed: UInt64 = 0x6D6F_6465_6C6B_6565  // "modelkee"
    public static let maskBeforeNormal: UInt64 = ~0 << (64 - 22)
    public static let maskAfterNormal: UInt64 = ~0 << (64 - 18)

    /// The gear table: SplitMix64 (Steele, Lea, Flood 2014) from `gearSeed`.
    public static let gear: [UInt64] = {
        var state = gearSeed
        return (0..<256).map { _ in
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }()

    private var pending: [UInt8] = []
    private var hash: UInt64 = 0

    public init() {
        pending.reserveCapacity(Self.maximumSize)
    }

    /// A chunker with no buffer reserved (a placeholder to swap with).
    package init(reserving: Bool) {
        if reserving { pending.reserveCapacity(Self.maximumSize) }
    }

    /// Feeds bytes; calls `emit` with every chunk completed by them, in order. The buffer passed
    /// to `emit` is the chunker's own, reused for the next chunk: use it, do not keep it.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        var start = 0
        while start < bytes.count {
            let cut = findCut(in: bytes, from: start)
            if let cut {
                pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<cut]))
                try pending.withUnsafeBytes { try emit($0) }
                pending.removeAll(keepingCapacity: true)
                hash = 0
                start = cut
            } else {
                pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start...]))
                return
            }
        }
    }

    public mutating func feed(_ bytes: [UInt8], emit: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        try bytes.withUnsafeBytes { try feed($0, emit: emit) }
    }

    /// Emits the last, possibly short, chunk.
    public mutating func finish(emit: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        if !pending.isEmpty {
            try pending.withUnsafeBytes { try emit($0) }
            pending.removeAll(keepingCapacity: true)
        }
        hash = 0
    }

    /// The index in `bytes` just after the cut point of the current chunk, if it falls in `bytes[from...]`.
    private mutating func findCut(in bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        var length = pending.count
        var i = from
        let end = bytes.count
        // Skip to the minimum size: no cut can fall before it.
        if length < Self.minimumSize {
            let skip = min(Self.minimumSize - length, end - i)
            i += skip
            length += skip
            if length < Self.minimumSize { return nil }
        }
        var h = hash
        return Self.gear.withUnsafeBufferPointer { gear -> Int? in
            // Two loops, so the mask is not chosen per byte. With L the chunk's length once the
            // byte is in: the harder mask while L < normalSize, the easier one from there, and a
            // cut at L == maximumSize whatever the hash says.
            let firstStart = i
            let normalEnd = min(end, i + max(0, Self.normalSize - 1 - length))
            while i < normalEnd {
                h = (h << 1) &+ gear[Int(bytes[i])]
                i += 1
                if h & Self.maskBeforeNormal == 0 {
                    hash = 0
                    return i
                }
            }
            length += i - firstStart
            let secondStart = i
            let maximumEnd = min(end, i + (Self.maximumSize - length))
            while i < maximumEnd {
                h = (h << 1) &+ gear[Int(bytes[i])]
                i += 1
                if h & Self.maskAfterNormal == 0 {
                    hash = 0
                    return i
                }
            }
            length += i - secondStart
            if length >= Self.maximumSize {
                hash = 0
                return i
            }
            hash = h
            return nil
        }
    }
}
