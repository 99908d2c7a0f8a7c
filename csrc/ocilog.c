/*
 * ocilog.c - the records of minirun-oci's --log file, as runc's logrus writes them:
 * JSON lines, or its text format with Go's quoting (minirun/oci/log.py calls these).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "ociverbs.h"

/* Python's str.isprintable() of a code point above ASCII (Go's strconv.Quote keeps
 * those as they are): not the C1 controls, the separators but ASCII's space, the
 * format characters, surrogates and private use. */
static int printable(unsigned cp)
{
    static const unsigned ranges[][2] = {
        {0x80, 0xa0}, {0xad, 0xad}, {0x600, 0x605}, {0x61c, 0x61c}, {0x6dd, 0x6dd}, {0x70f, 0x70f},
        {0x1680, 0x1680}, {0x180e, 0x180e}, {0x2000, 0x200f}, {0x2028, 0x202f}, {0x205f, 0x206f},
        {0x3000, 0x3000}, {0xd800, 0xf8ff}, {0xfeff, 0xfeff}, {0xfff9, 0xfffb}, {0x110bd, 0x110bd},
        {0x1d173, 0x1d17a}, {0xe0001, 0xe007f}, {0xf0000, 0x10ffff},
    };

    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
        if (cp >= ranges[i][0] && cp <= ranges[i][1])
            return 0;
    return 1;
}

/* logrus's text value: bare when it holds only these, else quoted as Go's strconv.Quote. */
static void text_value(struct mr_buf *b, const char *s, size_t len)
{
    static const char bare[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+";
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    size_t n_bare = 0;

    while (n_bare < len && s[n_bare] && strchr(bare, s[n_bare]))
        n_bare++;
    if (n_bare == len) { /* "" too, as logrus leaves it */
        mr_buf_put(b, s, len);
        return;
    }
    mr_buf_puts(b, "\"");
    while (p < end) {
        unsigned c = *p, cp = 0;
        int n = 0;

        switch (c) {
        case '\a': mr_buf_puts(b, "\\a"); p++; continue;
        case '\b': mr_buf_puts(b, "\\b"); p++; continue;
        case '\f': mr_buf_puts(b, "\\f"); p++; continue;
        case '\n': mr_buf_puts(b, "\\n"); p++; continue;
        case '\r': mr_buf_puts(b, "\\r"); p++; continue;
        case '\t': mr_buf_puts(b, "\\t"); p++; continue;
        case '\v': mr_buf_puts(b, "\\v"); p++; continue;
        case '\\': mr_buf_puts(b, "\\\\"); p++; continue;
        case '"': mr_buf_puts(b, "\\\""); p++; continue;
        }
        if (c < 0x20 || c == 0x7f) {
            mr_buf_printf(b, "\\x%02x", c);
            p++;
            continue;
        }
        if (c < 0x80) {
            mr_buf_put(b, (const char *)p++, 1);
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            n = 2, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 3, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 4, cp = c & 0x07;
        if (end - p < n)
            n = 0;
        for (int i = 1; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                n = 0;
                break;
            }
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (!n || (cp >= 0xd800 && cp < 0xe000)) { /* not UTF-8: the byte, as Go quotes it */
            mr_buf_printf(b, "\\x%02x", c);
            p++;
            continue;
        }
        if (printable(cp))
            mr_buf_put(b, (const char *)p, (size_t)n);
        else if (cp < 0x10000)
            mr_buf_printf(b, "\\u%04x", cp);
        else
            mr_buf_printf(b, "\\U%08x", cp);
        p += n;
    }
    mr_buf_puts(b, "\"");
}

char *mr_oci_log_text_value(const char *s, size_t n)
{
    struct mr_buf b = {0};

    mr_buf_puts(&b, "");
    text_value(&b, s, n);
    if (b.failed)
        mr_buf_free(&b);
    return b.p;
}

static void timestamp(char *out, size_t n)
{
    struct timespec ts;
    struct tm tm;
    char base[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%09ldZ", base, ts.tv_nsec);
}

char *mr_oci_log_line(const char *level, const char *msg, size_t msg_len, int json)
{
    struct mr_buf b = {0};
    char now[64];

    timestamp(now, sizeof(now));
    if (json) {
        mr_buf_puts(&b, "{\"level\": ");
        mr_json_write_string(&b, level, strlen(level));
        mr_buf_puts(&b, ", \"msg\": ");
        mr_json_write_string(&b, msg, msg_len);
        mr_buf_puts(&b, ", \"time\": ");
        mr_json_write_string(&b, now, strlen(now));
        mr_buf_puts(&b, "}");
    } else {
        mr_buf_puts(&b, "time=");
        text_value(&b, now, strlen(now));
        mr_buf_printf(&b, " level=%s msg=", level);
        text_value(&b, msg, msg_len);
    }
    if (b.failed) {
        mr_buf_free(&b);
        return NULL;
    }
    return b.p;
}
