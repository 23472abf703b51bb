// zlib from the system (Debian: zlib1g-dev), the same library NIOExtras' compression links.
#include <zlib.h>
