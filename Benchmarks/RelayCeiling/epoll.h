// What Glibc's Swift module leaves out: epoll and TCP_NODELAY.
#include <sys/epoll.h>
#include <netinet/tcp.h>
#include <poll.h>
