import CNGHTTP2
import NIOHPACK

extension HPACKHeaders {
    /// Calls `body` with these fields as nghttp2 name/value pairs, laid out in scratch memory (on the
    /// stack when small): nghttp2 copies them while submitting.
    func withNameValues(
        _ body: (UnsafePointer<nghttp2_nv>, Int) -> Int32
    ) -> Int32 {
        var bytes = 0
        for (name, value, _) in self { bytes += name.utf8.count + value.utf8.count }
        return withUnsafeTemporaryAllocation(of: nghttp2_nv.self, capacity: Swift.max(self.count, 1)) { nva in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Swift.max(bytes, 1)) { storage in
                var offset = 0
                var index = 0
                for (name, value, indexing) in self {
                    let namePointer = storage.baseAddress! + offset
                    offset = storage[offset...].initialize(fromContentsOf: name.utf8)
                    let valuePointer = storage.baseAddress! + offset
                    offset = storage[offset...].initialize(fromContentsOf: value.utf8)
                    let flags = indexing == .neverIndexed ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE
                    nva[index] = nghttp2_nv(
                        name: namePointer,
                        value: valuePointer,
                        namelen: name.utf8.count,
                        valuelen: value.utf8.count,
                        flags: UInt8(flags.rawValue)
                    )
                    index += 1
                }
                return body(UnsafePointer(nva.baseAddress!), index)
            }
        }
    }
}
