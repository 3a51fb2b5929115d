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

        // MARK: - Core model

        /// PUI record types, keys and validation derived from the shipped schema (schema/pui-v1.xsd).
        .target(name: "GatewayModel", dependencies: ["XMLSupport", "CryptoSupport", "TextSupport"]),

        // MARK: - Configuration, mapping, journal

        /// gateway.yaml, adapter and mapping files: strict parsing with file:line:key errors.
        .target(name: "GatewayConfig", dependencies: ["YAMLSupport"]),
        /// Declarative mappings compiled to a plan that turns source rows into PUI records. Pure.
        .target(name: "Mapping", dependencies: ["GatewayModel", "GatewayConfig", "TextSupport"]),
        /// The durable journal: records with revisions, source offsets, quarantine, consumer cursors.
        .target(name: "Journal", dependencies: ["GatewayModel", "SQLiteSupport", "CryptoSupport"]),

        // MARK: - Supervision

        /// Calendar, case clocks, the 21 rules, alert life and monthly scores. Pure: Foundation only.
        .target(name: "Supervision"),
        /// The impure engine around it: journal consumer, facts tables, timer index, alerts, scores, statistics.
        .target(name: "Monitoring", dependencies: ["Supervision", "Journal", "GatewayModel", "XMLSupport", "SQLiteSupport"]),

        // MARK: - Edges

        /// Source adapters (CSV drop); each turns legacy input into rows for a mapping.
        .target(name: "Adapters", dependencies: ["GatewayModel", "GatewayConfig", "Mapping", "Journal",
                                                 "TextSupport", "CryptoSupport"]),

        // MARK: - Wiring and executable

        /// Loads configuration and wires adapters → mappings → journal; the commands' logic.
        .target(name: "GatewayRuntime", dependencies: ["GatewayConfig", "GatewayModel", "Mapping", "Journal",
                                                       "Adapters", "TextSupport", "Monitoring"]),
        /// The `esgate` command line.
        .executableTarget(name: "esgate", dependencies: ["GatewayRuntime"]),
        /// `swift run -c release monitoring-bench`: tick cost of the supervision engine over N open cases.
        .executableTarget(name: "monitoring-bench", dependencies: ["Monitoring", "Journal", "GatewayModel", "Supervision"],
                          path: "Sources/MonitoringBench"),

        // MARK: - Tests

        .testTarget(name: "SupportTests",
                    dependencies: ["SQLiteSupport", "XMLSupport", "YAMLSupport", "CryptoSupport", "TextSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "GatewayModelTests", dependencies: ["GatewayModel", "XMLSupport"]),
        .testTarget(name: "GatewayConfigTests", dependencies: ["GatewayConfig"]),
        .testTarget(name: "MappingTests", dependencies: ["Mapping", "GatewayConfig", "GatewayModel"]),
        .testTarget(name: "JournalTests", dependencies: ["Journal", "GatewayModel"]),
        .testTarget(name: "AdapterTests",
                    dependencies: ["Adapters", "GatewayRuntime", "Journal", "GatewayConfig", "CryptoSupport",
                                   "SQLiteSupport", "TextSupport", "GatewayModel"]),
        .testTarget(name: "SupervisionTests", dependencies: ["Supervision"], exclude: ["Fixtures"]),
        .testTarget(name: "MonitoringTests",
                    dependencies: ["Monitoring", "Supervision", "Journal", "GatewayModel", "GatewayRuntime", "GatewayConfig"]),
    ]
)
