@testable import Adapters
import GatewayConfig
@testable import ODBCSupport
import Testing

/// What a failed connect is told to check, from drivers' own words (messages as psqlODBC, MariaDB Connector/ODBC,
/// FreeTDS and Oracle write them; the tests with real servers cover a misspelt driver and a wrong password).
@Suite("ODBC connect hints")
struct ConnectionHintTests {
    private func hint(_ sqlState: String, _ native: Int32, _ message: String, loginTimeout: Duration = .seconds(15),
                      passwordFile: String? = nil) -> String {
        var settings = ODBCSettings(connection: "Driver={X}", query: "SELECT 1", mode: .snapshot)
        settings.loginTimeout = loginTimeout
        settings.passwordFile = passwordFile
        let error = ODBCError(operation: "connect", diagnostics: [ODBCDiagnostic(sqlState: sqlState, nativeCode: native, message: message)])
        return ODBCAdapter.connectionHint(error, settings: settings) ?? "none"
    }

    @Test("each kind of failure gets the advice that fits it, not the password's")
    func hintsFitTheFailure() {
        let cases: [(String, Int32, String, String)] = [
            ("28000", 1045, "Access denied for user 'esgate'@'localhost' (using password: YES)", "the server refused the user or password"),
            ("42000", 1044, "Access denied for user 'esgate'@'%' to database 'sp'", "check Database= in odbc.connection"),
            ("08001", 0, "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  database \"sp\" does not exist", "check Database= in odbc.connection"),
            ("08001", 0, "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  role \"esgat\" does not exist", "check UID in odbc.connection"),
            ("08001", 0, "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  password authentication failed for user \"esgate\"", "the server refused the user or password"),
            ("42000", 4060, "[FreeTDS][SQL Server]Cannot open database \"SP\" requested by the login. The login failed.", "check Database= in odbc.connection"),
            ("08001", 0, "connection to server at \"127.0.0.1\", port 5999 failed: Connection refused", "nothing answers at the server and port"),
            ("HY000", 2002, "Can't connect to server on '127.0.0.1' (115)", "nothing answers at the server and port"),
            ("HY000", 12170, "[Oracle][ODBC][Ora]ORA-12170: TNS:Connect timeout occurred", "no answer within login_timeout (15 s)"),
            ("01000", 0, "[unixODBC][Driver Manager]Can't open lib 'PostgreSQL Unicod' : file not found", "`odbcinst -q -d` lists the drivers"),
            ("42P01", 0, "relation \"cases\" does not exist", "none"),
        ]
        for (state, native, message, says) in cases {
            let text = hint(state, native, message)
            #expect(says == "none" ? text == "none" : text.contains(says), "\(message) → \(text)")
        }
    }

    @Test("the hint says where the password comes from, and what a login_timeout of 0 means")
    func passwordSourceAndTimeoutZero() {
        #expect(hint("28P01", 0, "password authentication failed", passwordFile: "/etc/esgate/secrets/db.pw")
            .contains("the password is read from odbc.password_file /etc/esgate/secrets/db.pw"))
        #expect(hint("HYT00", 0, "Timeout expired", loginTimeout: .zero).contains("before the driver's own timeout (login_timeout is 0)"))
    }
}
