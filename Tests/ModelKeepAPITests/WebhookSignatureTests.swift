import Crypto
import Foundation
import Testing
import TestSupport
@testable import ModelKeepAPI
import ModelKeepChunking
import ModelKeepJSON
import ModelKeepSync
@testable import ModelKeepRegistry

/// Serialized: the kept-keys test fills the process-wide cache past its bound (emptying it), which
/// would race the sweep test's expectations about what the cache holds.
@Suite("What a webhook delivery carries", .serialized)
struct WebhookSignatureTests {
    @Test("a signature made from the secret's kept HMAC state is the one made from scratch, whatever came between")
    func keptKeys() {
        var generator = SystemRandomNumberGenerator()
        let secrets = ["s3cr3t", "another secret", "é 秘密", String(repeating: "k", count: 200)]  // one longer than SHA-256's block
        // Interleaved secrets, then more of them than are kept (the cache emptied on the way).
        let order = (0..<300).map { _ in secrets.randomElement(using: &generator)! } + (0..<(WebhookSignature.maxKeys + 50)).map { "rotated-\($0)" } + secrets
        for secret in order {
            let id = "d-\(UInt64.random(in: 0...UInt64.max, using: &generator))", timestamp = "\(Int.random(in: 0...2_000_000_000, using: &generator))"
            let body = (0..<Int.random(in: 0...300, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let kept = WebhookSignature.mac(secret: secret, deliveryID: id, timestamp: timestamp, body: body)
            let fresh = HMAC<SHA256>.authenticationCode(for: Array("\(id).\(timestamp).".utf8) + body, using: SymmetricKey(data: Data(secret.utf8)))
            let same = Data(kept) == Data(fresh)
            #expect(same, "secret \(secret.prefix(12))")
            if !same { return }
            let hex = kept.withUnsafeBytes { Hex.lowercase($0) }
            #expect(hex == Data(fresh).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined())
        }
    }

    @Test("a secret's kept HMAC leaves memory once idle for idleSeconds, and is kept while used")
    func idleSecretsSwept() {
        let second: UInt64 = 1_000_000_000, idle = WebhookSignature.idleSeconds * second
        let start = DispatchTime.now().uptimeNanoseconds
        let secret = "swept-\(UInt64.random(in: 0...UInt64.max))", other = "kept-\(UInt64.random(in: 0...UInt64.max))"
        let body: [UInt8] = Array("{}".utf8)
        _ = WebhookSignature.mac(secret: secret, deliveryID: "d-1", timestamp: "1", body: body, now: start)
        _ = WebhookSignature.mac(secret: other, deliveryID: "d-2", timestamp: "1", body: body, now: start)
        WebhookSignature.sweep(now: start + idle - second)
        #expect(WebhookSignature.holds(secret) && WebhookSignature.holds(other))
        // Used again half-way: kept past the first one's limit.
        _ = WebhookSignature.mac(secret: other, deliveryID: "d-3", timestamp: "1", body: body, now: start + idle / 2)
        WebhookSignature.sweep(now: start + idle)
        #expect(!WebhookSignature.holds(secret))
        #expect(WebhookSignature.holds(other))
        // A use stamped after the sweep read its clock (another thread) is not idle.
        WebhookSignature.sweep(now: start)
        #expect(WebhookSignature.holds(other))
        WebhookSignature.sweep(now: start + idle / 2 + idle)
        #expect(!WebhookSignature.holds(other))
        // Signed again after being dropped: the same signature as ever.
        let again = WebhookSignature.mac(secret: secret, deliveryID: "d-4", timestamp: "2", body: body)
        #expect(Data(again) == Data(HMAC<SHA256>.authenticationCode(for: Array("d-4.2.".utf8) + body, using: SymmetricKey(data: Data(secret.utf8)))))
    }

    @Test("the deliverer's loop tidies on every server, sending or idle")
    func deliveryLoopTidies() throws {
        let api = try APIClient(.router)
        let tidied = Locked(0)
        let deliverer = WebhookDeliverer(registry: api.registry.registry, compose: { _ in nil }, tidy: { tidied.withLock { $0 += 1 } })
        deliverer.start()
        // The loop waits at most half a second for a change when idle: three rounds within 10 s.
        for _ in 0..<100 where tidied.withLock({ $0 }) < 3 { Thread.sleep(forTimeInterval: 0.1) }
        deliverer.stop()
        deliverer.waitUntilStopped()
        #expect(tidied.withLock { $0 } >= 3)
    }

    @Test("hex of any sequence of bytes, contiguous or not")
    func hex() {
        let bytes: [UInt8] = [0, 1, 0x0f, 0x10, 0x7f, 0x80, 0xab, 0xff]
        #expect(Hex.lowercase(bytes) == "00010f107f80abff")
        #expect(Hex.lowercase(bytes.lazy.map { $0 }) == "00010f107f80abff")  // no contiguous storage
        #expect(Hex.lowercase([UInt8]()) == "")
    }

    @Test("an event is written as the feed has always answered it, actor or not")
    func eventText() throws {
        let payload: JSONObject = ["model_id": "m-1", "version": "3", "note": "é \"quoted\" \u{1}", "n": .double(0.1), "nested": ["a": [1, 2]]]
        for actor in [nil, "key:ci"] as [String?] {
            let event = Event(id: 42, createdAt: 1_733_320_000_123, namespace: "team/vision", kind: "version.created", subjectID: "v-9",
                              actor: actor, payload: payload)
            var json = JSONStream()
            EventRoutes.write(event, into: &json)
            let tree: JSONValue = ["id": .int(event.id), "created_at": Rendering.time(event.createdAt), "namespace": .string(event.namespace),
                                   "kind": .string(event.kind), "subject_id": .string(event.subjectID), "actor": .optional(event.actor),
                                   "payload": .object(event.payload)]
            #expect(String(decoding: json.bytes, as: UTF8.self) == JSONWriter.string(tree))
        }
    }
}
