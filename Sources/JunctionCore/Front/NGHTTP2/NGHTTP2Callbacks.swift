import CNGHTTP2

/// The C callbacks every `NGHTTP2Session` hands nghttp2, built once (nghttp2_session_server_new2
/// copies them): each finds its session through the user-data pointer and calls the matching
/// `on…` method.
enum NGHTTP2Callbacks {

    private static func session(_ user: UnsafeMutableRawPointer?) -> NGHTTP2Session {
        Unmanaged<NGHTTP2Session>.fromOpaque(user!).takeUnretainedValue()
    }

    static let read: nghttp2_data_source_read_callback = { _, _, buffer, length, flags, source, user in
        let stream = Unmanaged<NGHTTP2Session.Stream>.fromOpaque(source!.pointee.ptr!).takeUnretainedValue()
        return Self.session(user).onRead(stream, into: buffer!, length: length, flags: flags!)
    }

    nonisolated(unsafe) static let callbacks: OpaquePointer = {
        var callbacks: OpaquePointer?
        precondition(nghttp2_session_callbacks_new(&callbacks) == 0)
        nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks) { _, hd, user in
            Self.session(user).onBeginFrame(hd!)
        }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks) { _, frame, user in
            Self.session(user).onBeginHeaders(frame!)
        }
        nghttp2_session_callbacks_set_on_header_callback(callbacks) {
            _,
            frame,
            name,
            nameLength,
            value,
            valueLength,
            flags,
            user in
            Self.session(user).onHeader(
                frame!,
                name: UnsafeRawBufferPointer(start: name, count: nameLength),
                value: UnsafeRawBufferPointer(start: value, count: valueLength),
                flags: flags
            )
        }
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks) { _, frame, user in
            Self.session(user).onFrameReceived(frame!)
        }
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks) { _, _, streamID, data, length, user in
            Self.session(user).onDataChunk(streamID: streamID, data: data!, count: length)
        }
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks) { _, streamID, errorCode, user in
            Self.session(user).onStreamClose(streamID, errorCode: errorCode)
        }
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks) { _, frame, user in
            Self.session(user).onFrameSent(frame!)
        }
        return callbacks!
    }()

    /// Flood limits and explicit flow control; the client magic is read (the preface is input).
    nonisolated(unsafe) static let options: OpaquePointer = {
        var options: OpaquePointer?
        precondition(nghttp2_option_new(&options) == 0)
        nghttp2_option_set_no_auto_window_update(options, 1)
        nghttp2_option_set_max_outbound_ack(options, 1000)
        nghttp2_option_set_max_settings(options, 32)
        nghttp2_option_set_stream_reset_rate_limit(options, 1000, 33)
        nghttp2_option_set_max_continuations(options, 8)
        return options!
    }()
}
