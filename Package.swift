// swift-tools-version:6.0
// esgate: the interface gateway between a district's legacy systems and the provincial unified interface (PUI).
//
// Layers point inward: C libraries → *Support wrappers → GatewayModel → Mapping / Journal → Adapters →
// GatewayRuntime → esgate (thin executable). Adapters and uplink depend on the model, never the reverse.
import PackageDescription

let package = Package(
    name: "esgate",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "esgate", targets: ["esgate"]),
    ],
    targets: [
        // MARK: - C libraries (module maps and the few shims Swift cannot import directly)

        /// sqlite3: the journal's storage engine.
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        /// libxml2: XML parsing, XSD validation, exclusive C14N, XSD regular expressions.
        .systemLibrary(name: "CXML2", path: "Sources/CXML2", pkgConfig: "libxml-2.0"),
        /// libyaml: configuration files (event parser; we build our own node tree with line numbers).
        .systemLibrary(name: "CYAML", path: "Sources/CYAML", pkgConfig: "yaml-0.1"),
        /// OpenSSL libcrypto: SHA-256 (content digests) and SM3 (package digests).
        .systemLibrary(name: "CCrypto", path: "Sources/CCrypto", pkgConfig: "libcrypto"),
        /// libcurl: typed wrappers for the variadic curl_easy_setopt / curl_easy_getinfo.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        /// libmicrohttpd: typed wrappers for MHD_start_daemon and the *_info getters.
        .systemLibrary(name: "CMicroHTTPD", pkgConfig: "libmicrohttpd", providers: [.apt(["libmicrohttpd-dev"])]),
        /// GnuTLS (the TLS library under libmicrohttpd): require + verify client certificates, read the peer CN.
        .systemLibrary(name: "CGnuTLS", pkgConfig: "gnutls", providers: [.apt(["libgnutls28-dev"])]),
        /// unixODBC: the driver manager for department databases (SQL Server, Oracle, MariaDB, PostgreSQL).
        .systemLibrary(name: "CODBC", path: "Sources/CODBC", providers: [.apt(["unixodbc-dev"])]),

        // MARK: - Thin Swift wrappers: one per C library, no C types in their public API

        /// SQLite connections, prepared statements, typed errors with extended result codes.
        .target(name: "SQLiteSupport", dependencies: ["CSQLite"]),
        /// XML documents, XSD validation with line numbers, XSD regular expressions, exclusive C14N.
        .target(name: "XMLSupport", dependencies: ["CXML2"]),
        /// YAML node tree with 1-based line numbers.
        .target(name: "YAMLSupport", dependencies: ["CYAML"]),
        /// SHA-256 and SM3 digests.
        .target(name: "CryptoSupport", dependencies: ["CCrypto"]),
        /// Character set conversion (glibc iconv: GB18030/GBK/GB2312 ↔ UTF-8) and text helpers.
        .target(name: "TextSupport"),
        /// Proleptic Gregorian day arithmetic (days ↔ year, month, day), without Foundation's calendars or ICU.
        .target(name: "CivilTime"),
        /// Blocking + async HTTP client with mutual TLS (libcurl).
        .target(name: "HTTPClientSupport", dependencies: ["CCurl", "CivilTime"]),
        /// Embedded HTTP(S) server with optional required client certificates (libmicrohttpd + GnuTLS).
        .target(name: "HTTPServerSupport", dependencies: ["CMicroHTTPD", "CGnuTLS"]),
        /// X.509 certificate and key inspection (libcrypto): subject, issuer, validity, key match.
        .target(name: "CertificateSupport", dependencies: ["CCrypto"]),
        /// ODBC connections, prepared statements with bound parameters, UTF-16 block fetch, typed SQLSTATE errors.
        .target(name: "ODBCSupport", dependencies: ["CODBC"]),

        // MARK: - Core model

        /// PUI record types, keys and validation derived from the shipped schema (schema/pui-v1.xsd).
        .target(name: "GatewayModel", dependencies: ["XMLSupport", "CryptoSupport", "TextSupport", "CivilTime"]),

        // MARK: - Configuration, mapping, journal

        /// gateway.yaml, adapter and mapping files: strict parsing with file:line:key errors.
        .target(name: "GatewayConfig", dependencies: ["YAMLSupport"]),
        /// Declarative mappings compiled to a plan that turns source rows into PUI records. Pure.
        .target(name: "Mapping", dependencies: ["GatewayModel", "GatewayConfig", "TextSupport", "CivilTime"]),
        /// The durable journal: records with revisions, source offsets, quarantine, consumer cursors.
        .target(name: "Journal", dependencies: ["GatewayModel", "SQLiteSupport", "CryptoSupport"]),

        // MARK: - Supervision

        /// Calendar, case clocks, the 21 rules, alert life and monthly scores. Pure: Foundation and CivilTime only.
        .target(name: "Supervision", dependencies: ["CivilTime"]),
        /// The impure engine around it: journal consumer, facts tables, timer index, alerts, scores, statistics.
        .target(name: "Monitoring", dependencies: ["Supervision", "Journal", "GatewayModel", "XMLSupport", "SQLiteSupport"]),

        // MARK: - Edges

        /// Source adapters (CSV drop, SOAP); each turns legacy input into rows for a mapping.
        .target(name: "Adapters", dependencies: ["GatewayModel", "GatewayConfig", "Mapping", "Journal",
                                                 "TextSupport", "CryptoSupport", "XMLSupport", "HTTPClientSupport",
                                                 "ODBCSupport", "CivilTime"]),

        /// The uplink: journal → fixed PUI packages → receivers over mutual TLS; receipts, retries, dead letters,
        /// reference data. Depends on the model and the journal, never the reverse.
        .target(name: "Uplink", dependencies: ["GatewayModel", "Journal", "XMLSupport", "CryptoSupport",
                                               "HTTPClientSupport", "GatewayConfig", "SQLiteSupport", "CertificateSupport",
                                               "CivilTime"]),
        /// `esgate receive`: a sandbox PUI receiver (mutual TLS, schema and digest checks, idempotent receipts).
        .target(name: "SandboxReceiver", dependencies: ["Uplink", "HTTPServerSupport", "GatewayModel", "XMLSupport",
                                                        "CryptoSupport", "SQLiteSupport"]),

        // MARK: - Wiring and executable

        /// Loads configuration and wires adapters → mappings → journal; the commands' logic.
        .target(name: "GatewayRuntime", dependencies: ["GatewayConfig", "GatewayModel", "Mapping", "Journal",
                                                       "Adapters", "TextSupport", "Monitoring", "Uplink",
                                                       "SandboxReceiver", "CertificateSupport", "ODBCSupport", "SQLiteSupport"]),
        /// The `esgate` command line.
        .executableTarget(name: "esgate", dependencies: ["GatewayRuntime"]),
        /// `swift run -c release monitoring-bench`: tick cost of the supervision engine over N open cases.
        .executableTarget(name: "monitoring-bench", dependencies: ["Monitoring", "Journal", "GatewayModel", "Supervision"],
                          path: "Sources/MonitoringBench"),

        // MARK: - Tests

        .target(name: "TestSupport", dependencies: ["SQLiteSupport", "CryptoSupport", "Journal"], path: "Tests/TestSupport"),

        .testTarget(name: "SupportTests",
                    dependencies: ["SQLiteSupport", "XMLSupport", "YAMLSupport", "CryptoSupport", "TextSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "GatewayModelTests", dependencies: ["GatewayModel", "XMLSupport"]),
        .testTarget(name: "GatewayConfigTests", dependencies: ["GatewayConfig"]),
        .testTarget(name: "MappingTests", dependencies: ["Mapping", "GatewayConfig", "GatewayModel", "Journal"]),
        .testTarget(name: "JournalTests", dependencies: ["Journal", "GatewayModel", "SQLiteSupport", "CryptoSupport"]),
        .testTarget(name: "AdapterTests",
                    dependencies: ["TestSupport", "Adapters", "GatewayRuntime", "Journal", "GatewayConfig", "CryptoSupport",
                                   "SQLiteSupport", "TextSupport", "GatewayModel"]),
        .testTarget(name: "SOAPAdapterTests",
                    dependencies: ["TestSupport", "Adapters", "GatewayRuntime", "GatewayConfig", "GatewayModel", "Journal", "SQLiteSupport",
                                   "HTTPClientSupport", "XMLSupport", "TextSupport", "CryptoSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "ODBCTests",
                    dependencies: ["TestSupport", "ODBCSupport", "Adapters", "GatewayRuntime", "Journal", "GatewayConfig",
                                   "GatewayModel", "CryptoSupport", "SQLiteSupport", "Uplink", "XMLSupport"]),
        .testTarget(name: "SupervisionTests", dependencies: ["Supervision"], exclude: ["Fixtures"]),
        .testTarget(name: "MonitoringTests",
                    dependencies: ["Monitoring", "Supervision", "Journal", "GatewayModel", "GatewayRuntime", "GatewayConfig"]),
        .testTarget(name: "HTTPTransportTests", dependencies: ["TestSupport", "HTTPClientSupport", "HTTPServerSupport"]),
        .testTarget(name: "UplinkTests",
                    dependencies: ["TestSupport", "Uplink", "SandboxReceiver", "Journal", "GatewayModel", "GatewayConfig",
                                   "GatewayRuntime", "XMLSupport", "CryptoSupport", "CertificateSupport",
                                   "HTTPClientSupport", "HTTPServerSupport", "SQLiteSupport"],
                    resources: [.copy("Fixtures")]),
    ]
)
