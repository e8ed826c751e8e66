import Foundation
import Testing
@testable import ModelKeepAPI

@Suite("docs/API.md")
struct APIReferenceTests {
    static let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/API.md")

    @Test("docs/API.md is what the server's OpenAPI description says (regenerate: swift run modelkeep api-reference > docs/API.md)")
    func matchesTheServer() throws {
        let written = try String(contentsOf: Self.file, encoding: .utf8)
        let expected = APIReference.markdown()
        let first = zip(written.split(separator: "\n", omittingEmptySubsequences: false), expected.split(separator: "\n", omittingEmptySubsequences: false))
            .enumerated().first { $0.element.0 != $0.element.1 }
        #expect(written == expected, "first difference at line \((first?.offset ?? 0) + 1): \(first.map { "\($0.element.0) != \($0.element.1)" } ?? "length")")
    }

    @Test("every operation has an operationId of its own (OpenAPI requires it; /v2/ and /v2 are two)")
    func uniqueOperationIDs() {
        let ids = OpenAPIDocument.operations.map(OpenAPIDocument.operationID)
        let repeated = Dictionary(grouping: ids, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
        #expect(repeated.isEmpty, "repeated: \(repeated)")
    }

    @Test("every operation and every schema is in the reference, with working anchors")
    func complete() {
        let text = APIReference.markdown()
        for route in OpenAPIDocument.documentedRoutes { #expect(text.contains("| \(route.method) | `\(route.path)` |"), "\(route.method) \(route.path)") }
        for name in OpenAPISchemas.all.objectValue?.members.map(\.key) ?? [] { #expect(text.contains("\n### \(name)\n"), "\(name)") }
        #expect(APIReference.anchor("The MLflow dialect") == "the-mlflow-dialect")
        #expect(APIReference.anchor("ModelEnvelope") == "modelenvelope")
    }
}
