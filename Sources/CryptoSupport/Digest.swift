internal import CCrypto

/// OpenSSL 3 resolves `EVP_sha256()` through its provider machinery on every use; fetching the
/// implementation once keeps per-record digests cheap. The EVP_MD is immutable and shareable between threads.
private struct FetchedDigest: @unchecked Sendable {
    let pointer: OpaquePointer?
}
private let fetchedSHA256 = FetchedDigest(pointer: EVP_MD_fetch(nil, "SHA256", nil) ?? EVP_sha256())

/// A hash algorithm available from libcrypto.
public enum DigestAlgorithm: Sendable {
    case sha256
    case sm3

    fileprivate var evp: OpaquePointer? {
        switch self {
        case .sha256: return EVP_sha256()
        case .sm3: return EVP_sm3()
        }
    }
}

public struct DigestError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Incremental hashing (streamed files, package bodies). Not Sendable: one owner at a time.
public final class StreamingDigest {
    private let context: OpaquePointer?

    public init(_ algorithm: DigestAlgorithm) throws(DigestError) {
        guard let context = EVP_MD_CTX_new(), EVP_DigestInit_ex(context, algorithm.evp, nil) == 1 else {
            throw DigestError(description: "libcrypto cannot initialise \(algorithm)")
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    public func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    public func update(_ text: String) {
        var text = text
        text.withUTF8 { update(UnsafeRawBufferPointer($0)) }
    }

    /// The digest; the object must not be updated afterwards.
    public func finish() -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &output, &length)
        return Array(output.prefix(Int(length)))
    }
}

/// One-shot digests.
public enum Digest {
    /// Reused per thread: creating an EVP context per record costs more than hashing it.
    public static func sha256(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        EVP_Digest(bytes.baseAddress, bytes.count, &output, &length, fetchedSHA256.pointer, nil)
        return output
    }

    public static func sha256(_ text: String) -> [UInt8] {
        var text = text
        return text.withUTF8 { sha256(UnsafeRawBufferPointer($0)) }
    }

    public static func sm3(_ bytes: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        bytes.withUnsafeBytes { buffer in
            _ = EVP_Digest(buffer.baseAddress, buffer.count, &output, &length, EVP_sm3(), nil)
        }
        return output
    }

    public static func sm3(_ text: String) -> [UInt8] { sm3(Array(text.utf8)) }

    /// SHA-1. Only for legacy protocols that prescribe it (WS-Security UsernameToken PasswordDigest);
    /// never for integrity of our own data.
    public static func sha1(_ bytes: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 20)
        var length: UInt32 = 0
        bytes.withUnsafeBytes { buffer in
            _ = EVP_Digest(buffer.baseAddress, buffer.count, &output, &length, EVP_sha1(), nil)
        }
        return output
    }

    /// HMAC-SHA256 (used for pseudonymous identifiers and WS-Security digests).
    public static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        key.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                _ = HMAC(EVP_sha256(), k.baseAddress, Int32(k.count),
                         m.baseAddress?.assumingMemoryBound(to: UInt8.self), m.count, &output, &length)
            }
        }
        return output
    }
}

private let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

extension Array where Element == UInt8 {
    /// Lower-case hexadecimal.
    public var hexString: String {
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
