/// A growable byte buffer for writers that append many small pieces: a record decodes from its compact stored
/// form in some 25 (tags and texts), and a package in some 25,000. `Array.append` checks uniqueness and capacity
/// and updates the count through the array's storage on every call; here pointer, count and capacity are plain
/// values while a record is written, so a piece is a bounds check and a copy. Noncopyable: it owns its memory,
/// and a struct (not a class) is written through `inout` without the runtime's exclusivity bookkeeping.
public struct ByteAccumulator: ~Copyable {
    var buffer: RawByteBuffer

    public init(capacity: Int = 4096) {
        buffer = RawByteBuffer(capacity: max(capacity, 16))
    }

    deinit { buffer.deallocate() }

    public var count: Int { buffer.count }

    public mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) { buffer.put(bytes) }

    public mutating func append(_ bytes: [UInt8]) { bytes.withUnsafeBufferPointer { buffer.put($0) } }

    public mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { buffer.put($0) }
    }

    public mutating func append(byte: UInt8) { buffer.put(byte: byte) }

    /// Drops everything from `count` on.
    public mutating func truncate(to count: Int) { buffer.truncate(to: count) }

    /// The bytes written so far, valid for the duration of `body` (no append in it).
    public func withUnsafeBufferPointer<R, E: Error>(_ body: (UnsafeBufferPointer<UInt8>) throws(E) -> R) throws(E) -> R {
        try body(UnsafeBufferPointer(start: buffer.base, count: buffer.count))
    }

    /// A copy of the bytes written so far.
    public func makeArray() -> [UInt8] {
        withUnsafeBufferPointer { Array($0) }
    }
}

/// Where a decoded record goes: an array, or an accumulator's buffer.
protocol ByteOutput {
    var count: Int { get }
    mutating func put(_ bytes: UnsafeBufferPointer<UInt8>)
    mutating func put(byte: UInt8)
    /// Drops everything from `count` on.
    mutating func truncate(to count: Int)
}

extension Array: ByteOutput where Element == UInt8 {
    mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) { append(contentsOf: bytes) }
    mutating func put(byte: UInt8) { append(byte) }
    mutating func truncate(to count: Int) { removeSubrange(count...) }
}

/// `ByteAccumulator`'s storage as plain values (no ownership: the accumulator frees it).
struct RawByteBuffer: ByteOutput {
    private(set) var base: UnsafeMutablePointer<UInt8>
    private(set) var count = 0
    private var capacity: Int

    init(capacity: Int) {
        base = .allocate(capacity: capacity)
        self.capacity = capacity
    }

    func deallocate() { base.deallocate() }

    @inline(__always)
    private mutating func reserve(_ extra: Int) {
        if count + extra > capacity { grow(to: count + extra) }
    }

    private mutating func grow(to needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.update(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    @inline(__always)
    mutating func put(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress else { return }
        reserve(bytes.count)
        (base + count).update(from: source, count: bytes.count)
        count += bytes.count
    }

    @inline(__always)
    mutating func put(byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    mutating func truncate(to newCount: Int) {
        precondition(newCount >= 0 && newCount <= count, "truncate beyond the end")
        count = newCount
    }
}
