import NIOCore
import NIOHPACK

extension NGHTTP2Session {
    /// One stream's state, reached through nghttp2's stream user-data pointer; alive while it is in
    /// the session's list of streams (from its first HEADERS to nghttp2's close callback).
    final class Stream {
        let id: Int32
        /// Fields of the header block being received (request head or trailers).
        var fields = HPACKHeaders()
        /// The RFC 9113 6.5.2 size of that block so far.
        var fieldBytes = 0
        /// The request head went over the budget: answered 431, never reported.
        var overBudget = false
        /// The stream was reported (`.headers`), so its data, reset and close are too.
        var reported = false
        /// Request body bytes reported and not yet consumed (given back to the connection window if
        /// the stream closes first).
        var unconsumed = 0
        /// Of those, the bytes the caller took: what `consumeTaken` opens the windows by.
        var taken = 0
        /// Response body waiting for nghttp2's data provider.
        var queue = CircularBuffer<ByteBuffer>(initialCapacity: 2)
        var queuedBytes = 0
        /// The response has a data provider (`submitResponse(hasBody: true)`).
        var hasBody = false
        /// No more response body will be queued.
        var outputEnded = false
        /// Trailers to send once the queue is empty.
        var trailers: HPACKHeaders?
        /// The provider returned NGHTTP2_ERR_DEFERRED: new bytes must resume it.
        var deferred = false
        /// RST_STREAM NO_ERROR once the response's last frame is sent (`resetAfterResponse`).
        var resetAfterResponse = false
        var closed = false

        init(id: Int32) {
            self.id = id
        }
    }
}
