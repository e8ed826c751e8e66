import ArgumentParser
import Foundation
import ModelKeepClient

/// What every command that talks to a server shares: where it is, the key, and the output form.
struct ClientOptions: ParsableArguments {
    @Option(name: .customLong("server"), help: "The server's base URL (env MODELKEEP_URL; default http://127.0.0.1:7700).")
    var server: String?

    @Option(name: .customLong("api-key"),
            help: "An API key (env MODELKEEP_API_KEY, which keeps it out of the process list).")
    var apiKey: String?

    @Option(name: [.customShort("n"), .customLong("namespace")],
            help: """
                The namespace models are looked up and created in (env MODELKEEP_NAMESPACE; default "default"). \
                `models list` and `events` show every namespace unless one is given.
                """)
    var namespaceOption: String?

    @Flag(name: .customLong("json"), help: "Print the server's JSON instead of a table (for scripts).")
    var json = false

    var namespace: String { listNamespace ?? "default" }

    /// The namespace a list is limited to: the one given (option or environment), or nil for all.
    var listNamespace: String? { namespaceOption ?? ProcessInfo.processInfo.environment["MODELKEEP_NAMESPACE"] }

    func client() throws(ClientError) -> ModelKeepClient {
        let environment = ProcessInfo.processInfo.environment
        let url = try ModelKeepClient.serverURL(server ?? environment["MODELKEEP_URL"] ?? "http://127.0.0.1:7700")
        return ModelKeepClient(server: url, apiKey: apiKey ?? environment["MODELKEEP_API_KEY"])
    }
}

/// Exit codes scripts can rely on (README, "The client CLI").
enum ClientExit {
    static let failure: Int32 = 1
    static let rejected: Int32 = 2
    static let notFound: Int32 = 3
    static let conflict: Int32 = 4
    static let unauthorized: Int32 = 5
    static let verification: Int32 = 6
    static let unreachable: Int32 = 7

    static func code(for error: ClientError) -> Int32 {
        switch error {
        case .server(let status, _, _):
            switch status {
            case 401, 403: unauthorized
            case 404: notFound
            case 409, 412: conflict
            case 400, 413, 415, 422: rejected
            case 429, 502, 503, 504: unreachable
            default: failure
            }
        case .unreachable: unreachable
        case .verificationFailed: verification
        case .unexpectedResponse: failure
        case .local: rejected
        }
    }
}

/// A client command: its body runs with errors printed as `modelkeep: message` and mapped to an exit code.
protocol ClientCommand: AsyncParsableCommand {
    var options: ClientOptions { get }
    func run(_ client: ModelKeepClient) async throws(ClientError)
}

extension ClientCommand {
    func run() async throws {
        do {
            try await run(try options.client())
        } catch {
            FileHandle.standardError.write(Data("modelkeep: \(error.description)\n".utf8))
            throw ExitCode(ClientExit.code(for: error))
        }
    }
}
