import Foundation
import GatewayRuntime

// The executable stays thin: every command lives in GatewayRuntime, where tests can reach it.
let code = await runCommandLine(Array(CommandLine.arguments.dropFirst()))
exit(code)
