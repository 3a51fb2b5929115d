internal import CCrypto
import Foundation

/// Why a certificate or key could not be inspected.
public struct CertificateError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let message: String
    public init(file: String, message: String) {
        self.file = file
        self.message = message
    }
    public var description: String { "\(file): \(message)" }
}

/// The facts of an X.509 certificate that operators check (libcrypto; no C types in the API).
public struct CertificateInfo: Sendable, Equatable {
    public let file: String
    /// `/O=…/CN=…` (OpenSSL one-line form).
    public let subject: String
    public let issuer: String
    public let commonName: String?
    public let notBefore: Date
    public let notAfter: Date

    /// Whole days from `now` until expiry (negative once expired).
    public func daysLeft(now: Date = Date()) -> Int { Int((notAfter.timeIntervalSince(now) / 86400).rounded(.down)) }

    /// Reads the first certificate of a PEM file.
    public static func load(file: String) throws(CertificateError) -> CertificateInfo {
        let certificate = try readCertificate(file)
        defer { X509_free(certificate) }
        return try info(certificate, file: file)
    }

    /// Reads every certificate of a PEM file, in file order (a CA bundle holds several).
    public static func loadAll(file: String) throws(CertificateError) -> [CertificateInfo] {
        let certificates = try readCertificates(file)
        defer { for certificate in certificates { X509_free(certificate) } }
        guard !certificates.isEmpty else { throw CertificateError(file: file, message: "no PEM certificate in the file") }
        var infos: [CertificateInfo] = []
        for certificate in certificates { infos.append(try info(certificate, file: file)) }
        return infos
    }

    private static func info(_ certificate: OpaquePointer, file: String) throws(CertificateError) -> CertificateInfo {
        guard let subjectName = X509_get_subject_name(certificate), let issuerName = X509_get_issuer_name(certificate),
              let before = X509_get0_notBefore(certificate), let after = X509_get0_notAfter(certificate) else {
            throw CertificateError(file: file, message: "certificate lacks a subject, issuer or validity")
        }
        guard let notBefore = date(before), let notAfter = date(after) else {
            throw CertificateError(file: file, message: "certificate validity dates do not parse")
        }
        return CertificateInfo(file: file, subject: oneLine(subjectName), issuer: oneLine(issuerName),
                               commonName: commonName(subjectName), notBefore: notBefore, notAfter: notAfter)
    }

    /// True when `keyFile` holds the private key of the certificate in `certificateFile`.
    public static func keyMatches(certificateFile: String, keyFile: String, password: String? = nil) throws(CertificateError) -> Bool {
        let certificate = try readCertificate(certificateFile)
        defer { X509_free(certificate) }
        guard let bio = BIO_new_file(keyFile, "r") else {
            throw CertificateError(file: keyFile, message: "cannot open the key file")
        }
        defer { BIO_free(bio) }
        let key: OpaquePointer? = password.map { password in
            password.withCString { PEM_read_bio_PrivateKey(bio, nil, nil, UnsafeMutableRawPointer(mutating: $0)) }
        } ?? {
            // An empty passphrase: an encrypted key fails instead of prompting on the terminal.
            "".withCString { PEM_read_bio_PrivateKey(bio, nil, nil, UnsafeMutableRawPointer(mutating: $0)) }
        }()
        guard let key else {
            ERR_clear_error()
            let text = FileManager.default.contents(atPath: keyFile).map { String(decoding: $0, as: UTF8.self) } ?? ""
            let encrypted = text.contains("BEGIN ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED")
            let message = switch (encrypted, password) {
            case (true, nil): "the key is encrypted and no passphrase is configured (key_passphrase_file or key_passphrase_env)"
            case (true, _?): "the key is encrypted and the configured passphrase does not open it"
            case (false, _): "not a readable PEM private key"
            }
            throw CertificateError(file: keyFile, message: message)
        }
        defer { EVP_PKEY_free(key) }
        let matches = X509_check_private_key(certificate, key) == 1
        ERR_clear_error()
        return matches
    }

    /// True when the certificate chains to a CA in `caFile` (validity dates included). The certificates after
    /// the first in `certificateFile` are used as untrusted intermediates, as a TLS peer receives them: a client
    /// certificate issued by an intermediate CA is configured as leaf + intermediate, and libcurl sends both.
    /// `date` nil: the chain alone, whatever the validity periods (an expired certificate from this CA chains).
    public static func verify(certificateFile: String, caFile: String, at date: Date? = Date()) throws(CertificateError) -> (ok: Bool, reason: String) {
        let certificate = try readCertificate(certificateFile)
        defer { X509_free(certificate) }
        guard let intermediates = esg_x509_stack_new() else { throw CertificateError(file: certificateFile, message: "out of memory") }
        defer { esg_x509_stack_free(intermediates) }
        // readCertificates hands over every certificate: the leaf read again here is freed, the others move into
        // the stack (which frees them), and those left after a failed push are freed before throwing.
        var others = try readCertificates(certificateFile)
        if !others.isEmpty { X509_free(others.removeFirst()) }
        for (index, extra) in others.enumerated() {
            if esg_x509_stack_push(intermediates, extra) <= 0 {
                for unpushed in others[index...] { X509_free(unpushed) }
                throw CertificateError(file: certificateFile, message: "out of memory")
            }
        }
        guard let store = X509_STORE_new() else { throw CertificateError(file: caFile, message: "out of memory") }
        defer { X509_STORE_free(store) }
        guard X509_STORE_load_file(store, caFile) == 1 else {
            ERR_clear_error()
            throw CertificateError(file: caFile, message: "cannot load CA certificates")
        }
        guard let context = X509_STORE_CTX_new() else { throw CertificateError(file: caFile, message: "out of memory") }
        defer { X509_STORE_CTX_free(context) }
        guard X509_STORE_CTX_init(context, store, certificate, intermediates) == 1 else {
            throw CertificateError(file: certificateFile, message: "cannot set up verification")
        }
        if let date {
            X509_STORE_CTX_set_time(context, 0, time_t(date.timeIntervalSince1970))
        } else if let parameters = X509_STORE_CTX_get0_param(context) {
            X509_VERIFY_PARAM_set_flags(parameters, UInt(X509_V_FLAG_NO_CHECK_TIME))
        }
        let ok = X509_verify_cert(context) == 1
        let reason = ok ? "ok" : (X509_verify_cert_error_string(Int(X509_STORE_CTX_get_error(context))).map { String(cString: $0) } ?? "not verified")
        ERR_clear_error()
        return (ok, reason)
    }

    private static func readCertificate(_ file: String) throws(CertificateError) -> OpaquePointer {
        guard FileManager.default.isReadableFile(atPath: file) else {
            throw CertificateError(file: file, message: "file missing or not readable")
        }
        guard let bio = BIO_new_file(file, "r") else { throw CertificateError(file: file, message: "cannot open") }
        defer { BIO_free(bio) }
        guard let certificate = PEM_read_bio_X509(bio, nil, nil, nil) else {
            ERR_clear_error()
            throw CertificateError(file: file, message: "no PEM certificate in the file")
        }
        return certificate
    }

    /// Every certificate of a PEM file, in file order (the caller frees them).
    private static func readCertificates(_ file: String) throws(CertificateError) -> [OpaquePointer] {
        guard FileManager.default.isReadableFile(atPath: file) else {
            throw CertificateError(file: file, message: "file missing or not readable")
        }
        guard let bio = BIO_new_file(file, "r") else { throw CertificateError(file: file, message: "cannot open") }
        defer { BIO_free(bio) }
        var certificates: [OpaquePointer] = []
        while let certificate = PEM_read_bio_X509(bio, nil, nil, nil) { certificates.append(certificate) }
        ERR_clear_error()   // the end of the file ends the loop with a "no start line" error
        return certificates
    }

    private static func oneLine(_ name: OpaquePointer) -> String {
        guard let text = X509_NAME_oneline(name, nil, 0) else { return "" }
        defer { CRYPTO_free(text, nil, 0) }
        return String(cString: text)
    }

    private static func commonName(_ name: OpaquePointer) -> String? {
        let index = X509_NAME_get_index_by_NID(name, NID_commonName, -1)
        guard index >= 0, let entry = X509_NAME_get_entry(name, index), let data = X509_NAME_ENTRY_get_data(entry) else { return nil }
        var output: UnsafeMutablePointer<UInt8>?
        let length = ASN1_STRING_to_UTF8(&output, data)
        guard length >= 0, let output else { return nil }
        defer { CRYPTO_free(output, nil, 0) }
        return String(decoding: UnsafeBufferPointer(start: output, count: Int(length)), as: UTF8.self)
    }

    private static func date(_ time: UnsafePointer<ASN1_TIME>) -> Date? {
        var parts = tm()
        guard ASN1_TIME_to_tm(time, &parts) == 1 else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&parts)))
    }
}
