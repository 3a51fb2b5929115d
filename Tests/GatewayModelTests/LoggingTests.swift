import Testing
import GatewayModel

@Suite struct LoggingTests {
    /// Drivers and servers put line breaks in their messages (psqlODBC: "Connection refused\n\tIs the server
    /// running…"), and failed queries are quoted with theirs. A log line is one line: a collector (journald,
    /// syslog, grep) would otherwise take the continuation for a new entry without time, severity or component.
    @Test func aMessageWithLineBreaksIsLoggedAsOneLine() {
        let log = RecordingLogHandler()
        let logger = Logger(component: "esgate", minimum: .info, handler: log)
        logger.error("connect: SQLSTATE 08001: connection to server failed: Connection refused\n\tIs the server running?\n; retrying in 6.0 seconds")
        logger.error("execute query [query: SELECT * FROM (\r\nSELECT * FROM cases\r\n) esgate_q]\n")
        logger.info("plain")
        #expect(log.lines == [
            "error [esgate] connect: SQLSTATE 08001: connection to server failed: Connection refused Is the server running? ; retrying in 6.0 seconds",
            "error [esgate] execute query [query: SELECT * FROM ( SELECT * FROM cases ) esgate_q]",
            "info [esgate] plain",
        ])
    }
}
