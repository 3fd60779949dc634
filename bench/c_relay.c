/* A bare relay in C: what this machine allows any server, whatever its language.
 *
 * Not a chat server and not a peer: the C twin of bench/relay.py. It answers the
 * load generator's tcpmsg lines with fixed replies and passes every line said to
 * every other member: one epoll loop, TCP_NODELAY, everything a member is owed in
 * one turn of the loop gathered into one write. The harness measures it beside
 * the servers, so a run shows the floor the machine's kernel and scheduler set
 * for latency and connection rate, below any server's own work.
 *
 *   c-relay PORT      (listens on 127.0.0.1 only)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_BUF 65536
#define OUT_CAP (8 << 20) /* a member that owes more than this is dropped */

typedef struct conn {
    int fd, member, due, writable_wanted, quitting;
    size_t in_len, out_len, out_cap;
    char *out;
    char in[IN_BUF];
} conn_t;

#define MAX_CONNS 100000
static conn_t *members[MAX_CONNS];
static int member_count;
static conn_t *due[MAX_CONNS];
static int due_count;
static int live; /* connections open: at most MAX_CONNS, so every array above fits */
static int ep;

static void die(const char *what) { perror(what); exit(2); }

static void drop(conn_t *c) {
    for (int i = 0; i < member_count; i++)
        if (members[i] == c) { members[i] = members[--member_count]; break; }
    for (int i = 0; i < due_count; i++)
        if (due[i] == c) due[i] = NULL;
    close(c->fd);
    free(c->out);
    free(c);
    live--;
}

/* Flush at the turn's end; `broken` drops the connection there instead. */
static void make_due(conn_t *c, int broken) {
    if (!c->due) due[due_count++] = c;
    c->due = broken ? 2 : (c->due ? c->due : 1);
}

/* Owe bytes to a connection; they go out at the end of the loop's turn. */
static int owe(conn_t *c, const char *data, size_t n) {
    if (c->out_len + n > OUT_CAP) return -1;
    if (c->out_len + n > c->out_cap) {
        c->out_cap = (c->out_len + n) * 2;
        c->out = realloc(c->out, c->out_cap);
        if (!c->out) die("realloc");
    }
    memcpy(c->out + c->out_len, data, n);
    c->out_len += n;
    make_due(c, 0);
    return 0;
}

/* One write per connection per turn; what the socket does not take waits for EPOLLOUT. */
static int flush(conn_t *c) {
    while (c->out_len) {
        ssize_t w = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            return -1;
        }
        memmove(c->out, c->out + w, c->out_len - w);
        c->out_len -= w;
    }
    /* Asked to be told of room only while bytes wait: a system call only on a change. */
    int wanted = c->out_len != 0;
    if (wanted != c->writable_wanted) {
        c->writable_wanted = wanted;
        struct epoll_event e = {.events = EPOLLIN | (wanted ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
    }
    return 0;
}

#define REPLY(c, s) owe(c, s, sizeof s - 1)

/* Returns -1 when the connection is to close. */
static int on_line(conn_t *c, char *line, size_t n) {
    if (memmem(line, n, "\"say\"", 5)) {
        /* {"event":"said", then the request's own fields: as relay.py. */
        static char said[IN_BUF + 32];
        size_t m = sprintf(said, "{\"event\":\"said\",");
        memcpy(said + m, line + 1, n - 1);
        m += n - 1;
        said[m++] = '\n';
        for (int i = 0; i < member_count; i++)
            if (members[i] != c && owe(members[i], said, m) < 0) make_due(members[i], 1);
        return 0;
    }
    if (memmem(line, n, "\"hello\"", 7)) return REPLY(c, "{\"reply\":\"hello\"}\n");
    if (memmem(line, n, "\"create\"", 8) || memmem(line, n, "\"join\"", 6)) {
        if (!c->member) { c->member = 1; members[member_count++] = c; }
        return memmem(line, n, "\"create\"", 8) ? REPLY(c, "{\"reply\":\"create\"}\n")
                                                 : REPLY(c, "{\"reply\":\"join\"}\n");
    }
    if (memmem(line, n, "\"quit\"", 6)) {
        REPLY(c, "{\"reply\":\"quit\"}\n");
        return -1;
    }
    return 0;
}

static int on_readable(conn_t *c) {
    ssize_t r = read(c->fd, c->in + c->in_len, IN_BUF - c->in_len);
    if (r <= 0) return r < 0 && errno == EAGAIN ? 0 : -1;
    c->in_len += r;
    char *start = c->in, *end = c->in + c->in_len, *nl;
    int closing = 0;
    while (!closing && (nl = memchr(start, '\n', end - start))) {
        closing = on_line(c, start, nl - start) < 0;
        start = nl + 1;
    }
    c->in_len = end - start;
    memmove(c->in, start, c->in_len);
    if (c->in_len == IN_BUF) return -1; /* a line longer than the buffer */
    return closing ? -2 : 0;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: c-relay PORT\n"); return 2; }
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(listener, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    if (listen(listener, 4096) < 0) die("listen");
    ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &e);
    struct epoll_event ev[256];
    static conn_t *closing[MAX_CONNS];
    for (;;) {
        int k = epoll_wait(ep, ev, 256, -1);
        int closes = 0;
        for (int i = 0; i < k; i++) {
            conn_t *c = ev[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (live == MAX_CONNS) { close(fd); continue; }
                    live++;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *n = calloc(1, sizeof *n);
                    if (!n) die("calloc");
                    n->fd = fd;
                    struct epoll_event ne = {.events = EPOLLIN, .data.ptr = n};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ne);
                }
                continue;
            }
            int r = (ev[i].events & EPOLLIN) ? on_readable(c) : 0;
            if (ev[i].events & (EPOLLERR | EPOLLHUP)) r = -1;
            if (r == -1) make_due(c, 1); /* broken: dropped at the turn's end, sent nothing */
            else if (r == -2) { c->quitting = 1; closing[closes++] = c; } /* after its reply */
            else if (ev[i].events & EPOLLOUT) make_due(c, 0);
        }
        /* The turn's end: each connection owed something gets one write. */
        for (int i = 0; i < due_count; i++) {
            conn_t *c = due[i];
            if (!c) continue;
            if ((c->due == 2 || flush(c) < 0) && !c->quitting) closing[closes++] = c;
            c->due = 0;
        }
        due_count = 0;
        for (int i = 0; i < closes; i++) drop(closing[i]);
    }
}
