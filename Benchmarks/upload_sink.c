/*
 * Upload backend for Benchmarks/run.sh (the `upload` case): an HTTP/1.1 server that reads every
 * request body to its end, drops it, and only then answers, single-threaded on epoll so the
 * backend costs little next to the proxy under test.
 *
 *   upload_sink PORT
 *       listens on 127.0.0.1:PORT (prints "ready PORT"); keep-alive. Each request's body
 *       (Content-Length; none means an empty body) is read whole and discarded, then answered
 *       200 with the text body "received N" (N: the body bytes read), so the client can check
 *       that the proxy relayed the whole body. "Expect: 100-continue" gets a 100 first; a
 *       chunked body gets 501 and the connection closed (run.sh's client sends Content-Length,
 *       and the proxies measured forward it as is).
 *
 * Why not the nginx backend: `return 200` answers before it has read the body. Relayed by a
 * streaming proxy, that early 200 lets the client stop sending after a few megabytes.
 *
 * Build: cc -O2 -o upload_sink upload_sink.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
    perror(what);
    exit(1);
}

struct peer {
    int fd;
    int in_body;
    long long remaining; /* body bytes still to read */
    long long received;  /* body bytes read for the current request */
    size_t head_len;
    char head[16384];
};

static void drop(struct peer *peer) {
    close(peer->fd);
    free(peer);
}

/* The value of a header (case-insensitive name) in a head ending with "\r\n\r\n", or NULL. */
static const char *header(const char *head, const char *name) {
    size_t name_len = strlen(name);
    const char *line = strstr(head, "\r\n");
    while (line != NULL && line[2] != '\r') {
        line += 2;
        if (strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
            const char *value = line + name_len + 1;
            while (*value == ' ' || *value == '\t') value++;
            return value;
        }
        line = strstr(line, "\r\n");
    }
    return NULL;
}

static int send_all(int fd, const char *data, size_t len) {
    /* Small answers: the socket buffer takes them whole. */
    return write(fd, data, len) == (ssize_t)len ? 0 : -1;
}

/* The body is complete: answer. */
static int answer(struct peer *peer) {
    char response[256];
    char body[64];
    int body_len = snprintf(body, sizeof body, "received %lld\n", peer->received);
    int len = snprintf(response, sizeof response,
                       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", body_len, body);
    peer->in_body = 0;
    peer->received = 0;
    return send_all(peer->fd, response, (size_t)len);
}

/* A complete head is in peer->head (peer->head_len bytes, "\r\n\r\n" included): start its body. */
static int start_request(struct peer *peer) {
    peer->head[peer->head_len] = '\0';
    const char *te = header(peer->head, "Transfer-Encoding");
    if (te != NULL && strncasecmp(te, "identity", 8) != 0) {
        static const char refused[] =
            "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        send_all(peer->fd, refused, sizeof refused - 1);
        fprintf(stderr, "upload_sink: Transfer-Encoding: %.*s: only Content-Length bodies are supported\n",
                (int)strcspn(te, "\r"), te);
        return -1;
    }
    const char *cl = header(peer->head, "Content-Length");
    long long length = 0;
    if (cl != NULL) {
        length = strtoll(cl, NULL, 10);
        if (!isdigit((unsigned char)*cl) || length < 0) return -1;
    }
    const char *expect = header(peer->head, "Expect");
    if (expect != NULL && strncasecmp(expect, "100-continue", 12) == 0) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (send_all(peer->fd, cont, sizeof cont - 1) < 0) return -1;
    }
    peer->in_body = 1;
    peer->remaining = length;
    peer->received = 0;
    return 0;
}

/* Feed read bytes through the connection's state: heads, bodies, answers (keep-alive). */
static int consume(struct peer *peer, const char *data, size_t n) {
    while (n > 0) {
        if (peer->in_body) {
            size_t take = (long long)n < peer->remaining ? n : (size_t)peer->remaining;
            peer->remaining -= (long long)take;
            peer->received += (long long)take;
            data += take;
            n -= take;
            if (peer->remaining == 0 && answer(peer) < 0) return -1;
            continue;
        }
        /* Head: append at most what fits, then look for its end. */
        size_t room = sizeof peer->head - 1 - peer->head_len;
        size_t take = n < room ? n : room;
        memcpy(peer->head + peer->head_len, data, take);
        size_t before = peer->head_len;
        peer->head_len += take;
        char *end = memmem(peer->head, peer->head_len, "\r\n\r\n", 4);
        if (end == NULL) {
            if (peer->head_len == sizeof peer->head - 1) return -1; /* head too large */
            data += take;
            n -= take;
            continue;
        }
        size_t head_len = (size_t)(end + 4 - peer->head);
        size_t used = head_len - before; /* bytes of `data` that belong to this head */
        peer->head_len = head_len;
        if (start_request(peer) < 0) return -1;
        peer->head_len = 0;
        data += used;
        n -= used;
        if (peer->remaining == 0 && answer(peer) < 0) return -1;
    }
    return 0;
}

static _Noreturn void serve(int port) {
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0) die("bind");
    if (listen(listener, 4096) < 0) die("listen");
    int epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event);
    printf("ready %d\n", port);
    fflush(stdout);
    static char buffer[262144];
    struct epoll_event events[256];
    for (;;) {
        int count = epoll_wait(epoll, events, 256, -1);
        if (count < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < count; i++) {
            struct peer *peer = events[i].data.ptr;
            if (peer == NULL) {
                int fd;
                while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct peer *created = calloc(1, sizeof *created);
                    if (created == NULL) die("calloc");
                    created->fd = fd;
                    struct epoll_event add = {.events = EPOLLIN, .data.ptr = created};
                    epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &add);
                }
                continue;
            }
            ssize_t n = read(peer->fd, buffer, sizeof buffer);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (n <= 0 || consume(peer, buffer, (size_t)n) < 0) drop(peer);
        }
    }
}

int main(int argc, char **argv) {
    if (argc == 2) serve(atoi(argv[1]));
    fprintf(stderr, "usage: upload_sink PORT\n");
    return 2;
}
