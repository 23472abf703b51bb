// libnghttp2 from the system (Debian: libnghttp2-dev, 1.52 in bookworm): the HTTP/2 engine of the
// front (docs/nghttp2-front.md), chosen by the measurement in Benchmarks/H2Front.
#include <nghttp2/nghttp2.h>
