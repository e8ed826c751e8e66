import Testing
@testable import ModelKeepHTTP

@Suite("Multipart reader")
struct MultipartReaderTests {
    static let file = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 7) }
    static let body: [UInt8] = Array("preamble to skip\r\n--XyZ\r\nContent-Disposition: form-data; name=\"epoch\"\r\n\r\n5\r\n--XyZ\r\n".utf8)
        + Array("Content-Disposition: form-data; name=\"last.pt\"; filename=\"last.pt\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
        + file + Array("\r\n--XyZ\r\nContent-Disposition: form-data; name=\"empty\"\r\n\r\n\r\n--XyZ--\r\n".utf8)

    func parts(pieceSize: Int) throws -> [(name: String?, filename: String?, bytes: [UInt8])] {
        var offset = 0
        let reader = MultipartReader(boundary: "XyZ") {
            guard offset < Self.body.count else { return nil }
            let end = min(Self.body.count, offset + pieceSize)
            defer { offset = end }
            return Array(Self.body[offset..<end])
        }
        var result: [(name: String?, filename: String?, bytes: [UInt8])] = []
        while let part = try reader.nextPart() {
            var bytes: [UInt8] = []
            while let piece = try reader.read() { bytes += piece }
            result.append((part.name, part.filename, bytes))
        }
        return result
    }

    @Test("parts come out whole whatever the piece size, a delimiter split across pieces included", arguments: [1, 7, 1000, 65_536, 1_000_000])
    func readsParts(pieceSize: Int) throws {
        let result = try parts(pieceSize: pieceSize)
        #expect(result.map(\.name) == ["epoch", "last.pt", "empty"])
        #expect(result[0].bytes == Array("5".utf8))
        #expect(result[1].filename == "last.pt")
        #expect(result[1].bytes == Self.file)
        #expect(result[2].bytes.isEmpty)
    }

    @Test("a body that ends before its closing delimiter is malformed")
    func truncated() {
        let cut = Array(Self.body.prefix(5000))
        var given = false
        let reader = MultipartReader(boundary: "XyZ") {
            if given { return nil }
            given = true
            return cut
        }
        #expect(throws: HTTPError.self) {
            while try reader.nextPart() != nil { while try reader.read() != nil {} }
        }
    }

    @Test("the boundary comes from the Content-Type")
    func boundary() {
        #expect(MultipartReader.boundary(from: "multipart/form-data; boundary=abc123") == "abc123")
        #expect(MultipartReader.boundary(from: "multipart/form-data; charset=utf-8; boundary=\"q r\"") == "q r")
        #expect(MultipartReader.boundary(from: "application/json") == nil)
        #expect(MultipartReader.boundary(from: "multipart/form-data") == nil)
    }
}
