import ODBCSupport
import Testing

/// What `ODBCConnection.redact` leaves of a password: nothing, whatever characters the password holds.
@Suite("ODBC connection string redaction")
struct ConnectionStringRedactionTests {
    @Test("a braced password with an escaped } and a ; is masked whole (password_file adds PWD={…} with } doubled)")
    func bracedPasswordWithEscapedBrace() {
        // password_file content `a};b7Secret` becomes PWD={a}};b7Secret}
        let redacted = ODBCConnection.redact("Driver={PostgreSQL Unicode};Server=db;Uid=esgate;PWD={a}};b7Secret}")
        #expect(!redacted.contains("b7Secret"), "\(redacted)")
        #expect(redacted == "Driver={PostgreSQL Unicode};Server=db;Uid=esgate;PWD=***")
    }

    @Test("an unbraced password from ${ENV} that holds a ; is masked up to the next key=value pair")
    func unbracedPasswordWithSemicolon() {
        let redacted = ODBCConnection.redact("Driver={MariaDB Unicode};PWD=ab;cd12Secret;Server=db")
        #expect(!redacted.contains("cd12Secret"), "\(redacted)")
        #expect(redacted == "Driver={MariaDB Unicode};PWD=***;Server=db")
        #expect(ODBCConnection.redact("Uid=u;Pwd=plain;Server=db") == "Uid=u;Pwd=***;Server=db")
    }
}
