import Foundation
import ModelKeepHTTP

/// A libFuzzer target for the HTTP request parser (scripts/fuzz builds it with
/// `-sanitize=fuzzer,address -DFUZZING`), and, built plainly, a tool that replays saved inputs through
/// the same check (every crash ever found is kept in Tests/fuzz/http-parser and replayed in CI).
///
/// The check: the input (after its first byte) is parsed fed whole and fed in pieces of a size
/// the first byte picks; both must produce the same heads, the same body byte counts per
/// request and the same error status, never more body bytes than were fed, and finish in a
/// bounded number of steps. Small limits put the limit paths within the fuzzer's reach.
enum HTTPParserFuzz {
    struct Outcome: Equatable {
        var events: [String] = []
        var error: Int?
    }

    static var limits: HTTPParserLimits {
        var limits = HTTPParserLimits()
        limits.maxRequestLineLength = 200
        limits.maxHeaderBlockSize = 600
        limits.maxHeaderCount = 12
        return limits
    }

    static func check(_ input: [UInt8]) {
        guard let first = input.first else { return }
        let data = Array(input.dropFirst())
        let whole = run(data, pieceSize: max(1, data.count))
        let pieces = run(data, pieceSize: Int(first % 64) + 1)
        guard whole == pieces else {
            fatalError("fed whole: \(whole)\nfed in pieces of \(Int(first % 64) + 1): \(pieces)")
        }
    }

    static func run(_ data: [UInt8], pieceSize: Int) -> Outcome {
        var parser = HTTPRequestParser(limits: limits)
        var outcome = Outcome()
        var body = 0, totalBody = 0, steps = 0
        var offset = 0
        repeat {
            let end = min(data.count, offset + pieceSize)
            parser.append(data[offset..<end])
            offset = end
            do {
                while let event = try parser.next() {
                    steps += 1
                    precondition(steps <= 4 * data.count + 16, "the parser made more events than bytes")
                    switch event {
                    case .head:
                        guard let head = parser.head else { fatalError(".head without a head") }
                        outcome.events.append("head \(head.method) \(head.target) \(head.headers.fields.count)")
                    case .body(let bytes):
                        precondition(!bytes.isEmpty, "an empty body event")
                        body += bytes.count
                        totalBody += bytes.count
                    case .end:
                        outcome.events.append("end \(body)")
                        body = 0
                    }
                }
            } catch {
                outcome.error = error.status
                return outcome
            }
            precondition(totalBody <= offset, "more body bytes than were fed")
        } while offset < data.count
        if body > 0 { outcome.events.append("partial \(body)") }
        return outcome
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTPParser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    HTTPParserFuzz.check(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

#if FUZZING
/// libFuzzer's driver (linked by -sanitize=fuzzer). SwiftPM makes every executable's entry
/// point its own `main`, so libFuzzer's `main` is not used: this one hands over to the driver.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@main
enum FuzzHTTPParser {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            guard let data else { return 0 }
            return fuzzHTTPParser(data, size)
        })
    }
}
#else
/// Replays files (or every file in directories) through the check; the first failure crashes
/// with the difference.
@main
enum ReplayHTTPParserInputs {
    static func main() throws {
        var count = 0
        for argument in CommandLine.arguments.dropFirst() {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) else {
                FileHandle.standardError.write(Data("no such file: \(argument)\n".utf8))
                exit(2)
            }
            let paths = isDirectory.boolValue
                ? try FileManager.default.contentsOfDirectory(atPath: argument).sorted().map { argument + "/" + $0 }
                : [argument]
            for path in paths where !path.hasSuffix(".md") {
                HTTPParserFuzz.check(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
                count += 1
            }
        }
        print("replayed \(count) inputs through the HTTP parser check")
    }
}
#endif
