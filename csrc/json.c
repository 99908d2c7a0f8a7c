/*
 * json.c - see json.h. Strict: one value, no trailing text, no control characters in
 * strings, UTF-8 only, at most MAX_DEPTH levels; anything else is "not JSON".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define MAX_DEPTH 256

struct parser {
    const unsigned char *p, *end;
    int depth;
};

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static struct mr_json *node(enum mr_json_type type)
{
    struct mr_json *v = calloc(1, sizeof(*v));

    if (v)
        v->type = type;
    return v;
}

void mr_json_free(struct mr_json *v)
{
    while (v) {
        struct mr_json *next = v->next;

        mr_json_free(v->child);
        free(v->text);
        free(v->key);
        free(v);
        v = next;
    }
}

/* One UTF-8 sequence at p (at most end): its length, or 0 if it is not valid UTF-8. */
static int utf8_len(const unsigned char *p, const unsigned char *end, unsigned *cp)
{
    int n;
    unsigned c = p[0], min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, c &= 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, c &= 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, c &= 0x07, min = 0x10000;
    else
        return 0;
    if (end - p < n)
        return 0;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff)
        return 0;
    *cp = c;
    return n;
}

static void put_utf8(struct mr_buf *b, unsigned cp)
{
    char s[4];
    size_t n;

    if (cp < 0x80)
        s[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        s[0] = (char)(0xc0 | cp >> 6), s[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        s[0] = (char)(0xe0 | cp >> 12), s[1] = (char)(0x80 | ((cp >> 6) & 0x3f)), s[2] = (char)(0x80 | (cp & 0x3f)),
        n = 3;
    else
        s[0] = (char)(0xf0 | cp >> 18), s[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
        s[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), s[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    mr_buf_put(b, s, n);
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* A string at ps->p (its opening quote): the decoded text in a new buffer. A lone
 * surrogate (Python writes one for a byte that was not UTF-8) is kept as its three bytes. */
static int parse_string(struct parser *ps, char **text, size_t *len)
{
    struct mr_buf b = {0};

    ps->p++;
    while (ps->p < ps->end && *ps->p != '"') {
        unsigned c = *ps->p, cp;

        if (c < 0x20)
            goto bad;
        if (c == '\\') {
            if (ps->end - ps->p < 2)
                goto bad;
            c = ps->p[1];
            ps->p += 2;
            switch (c) {
            case '"': case '\\': case '/': mr_buf_put(&b, (char *)&ps->p[-1], 1); break;
            case 'b': mr_buf_put(&b, "\b", 1); break;
            case 'f': mr_buf_put(&b, "\f", 1); break;
            case 'n': mr_buf_put(&b, "\n", 1); break;
            case 'r': mr_buf_put(&b, "\r", 1); break;
            case 't': mr_buf_put(&b, "\t", 1); break;
            case 'u':
                if (ps->end - ps->p < 4 || hex4(ps->p, &cp) < 0)
                    goto bad;
                ps->p += 4;
                if (cp >= 0xd800 && cp < 0xdc00 && ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u') {
                    unsigned low;

                    if (hex4(ps->p + 2, &low) == 0 && low >= 0xdc00 && low < 0xe000) {
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                        ps->p += 6;
                    }
                }
                put_utf8(&b, cp);
                break;
            default:
                goto bad;
            }
            continue;
        }
        int n = utf8_len(ps->p, ps->end, &cp);

        if (!n)
            goto bad;
        mr_buf_put(&b, (const char *)ps->p, (size_t)n);
        ps->p += n;
    }
    if (ps->p >= ps->end || b.failed)
        goto bad;
    ps->p++;
    mr_buf_put(&b, "", 1);
    if (b.failed)
        goto bad;
    *text = b.p;
    *len = b.len - 1;
    return 0;
bad:
    mr_buf_free(&b);
    return -1;
}

static int digits(struct parser *ps)
{
    const unsigned char *start = ps->p;

    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
        ps->p++;
    return ps->p > start ? 0 : -1;
}

static struct mr_json *parse_value(struct parser *ps);

static struct mr_json *parse_container(struct parser *ps, int object)
{
    struct mr_json *v = node(object ? MJ_OBJECT : MJ_ARRAY), **tail;
    char close = object ? '}' : ']';

    if (!v || ++ps->depth > MAX_DEPTH)
        goto bad;
    tail = &v->child;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        ps->depth--;
        return v;
    }
    for (;;) {
        char *key = NULL;
        size_t key_len = 0;
        struct mr_json *item;

        skip_ws(ps);
        if (object) {
            if (ps->p >= ps->end || *ps->p != '"' || parse_string(ps, &key, &key_len) < 0)
                goto bad;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                free(key);
                goto bad;
            }
            ps->p++;
        }
        item = parse_value(ps);
        if (!item) {
            free(key);
            goto bad;
        }
        item->key = key;
        item->key_len = key_len;
        *tail = item;
        tail = &item->next;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            ps->depth--;
            return v;
        }
        goto bad;
    }
bad:
    mr_json_free(v);
    return NULL;
}

static struct mr_json *parse_value(struct parser *ps)
{
    struct mr_json *v;
    const unsigned char *start;

    skip_ws(ps);
    if (ps->p >= ps->end)
        return NULL;
    switch (*ps->p) {
    case '{':
        return parse_container(ps, 1);
    case '[':
        return parse_container(ps, 0);
    case '"':
        v = node(MJ_STRING);
        if (v && parse_string(ps, &v->text, &v->len) < 0) {
            mr_json_free(v);
            return NULL;
        }
        return v;
    case 't':
    case 'f':
    case 'n': {
        static const char *const words[] = {"true", "false", "null"};
        static const enum mr_json_type types[] = {MJ_TRUE, MJ_FALSE, MJ_NULL};

        for (int i = 0; i < 3; i++) {
            size_t n = strlen(words[i]);

            if ((size_t)(ps->end - ps->p) >= n && !memcmp(ps->p, words[i], n)) {
                ps->p += n;
                return node(types[i]);
            }
        }
        return NULL;
    }
    }
    start = ps->p;
    if (*ps->p == '-')
        ps->p++;
    if (ps->p < ps->end && *ps->p == '0')
        ps->p++;
    else if (digits(ps) < 0)
        return NULL;
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (digits(ps) < 0)
            return NULL;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (digits(ps) < 0)
            return NULL;
    }
    v = node(MJ_NUMBER);
    if (v) {
        v->len = (size_t)(ps->p - start);
        v->text = malloc(v->len + 1);
        if (!v->text) {
            free(v);
            return NULL;
        }
        memcpy(v->text, start, v->len);
        v->text[v->len] = '\0';
    }
    return v;
}

struct mr_json *mr_json_parse(const char *text, size_t len)
{
    struct parser ps = {(const unsigned char *)text, (const unsigned char *)text + len, 0};
    struct mr_json *v = parse_value(&ps);

    skip_ws(&ps);
    if (v && ps.p != ps.end) {
        mr_json_free(v);
        return NULL;
    }
    return v;
}

const struct mr_json *mr_json_get(const struct mr_json *obj, const char *key)
{
    const struct mr_json *found = NULL;

    if (!obj || obj->type != MJ_OBJECT)
        return NULL;
    for (const struct mr_json *m = obj->child; m; m = m->next)
        if (!strcmp(m->key, key) && m->key_len == strlen(key))
            found = m;
    return found;
}

const char *mr_json_str(const struct mr_json *v)
{
    return v && v->type == MJ_STRING ? v->text : NULL;
}

int mr_json_int(const struct mr_json *v, long long *out)
{
    char *end;

    if (!v || v->type != MJ_NUMBER || strpbrk(v->text, ".eE"))
        return -1;
    *out = strtoll(v->text, &end, 10);
    return *end ? -1 : 0;
}

size_t mr_json_count(const struct mr_json *v)
{
    size_t n = 0;

    if (v && (v->type == MJ_ARRAY || v->type == MJ_OBJECT))
        for (const struct mr_json *c = v->child; c; c = c->next)
            n++;
    return n;
}

int mr_json_truthy(const struct mr_json *v)
{
    if (!v)
        return 0;
    switch (v->type) {
    case MJ_NULL:
    case MJ_FALSE:
        return 0;
    case MJ_TRUE:
        return 1;
    case MJ_NUMBER:
        return strspn(v->text, "-0.") != strcspn(v->text, "eE"); /* 0, -0, 0.0, 0e5: false */
    case MJ_STRING:
        return v->len > 0;
    default:
        return v->child != NULL;
    }
}

void mr_buf_put(struct mr_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;

        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void mr_buf_puts(struct mr_buf *b, const char *s)
{
    mr_buf_put(b, s, strlen(s));
}

void mr_buf_printf(struct mr_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        mr_buf_put(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);

    if (!big) {
        b->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    mr_buf_put(b, big, (size_t)n);
    free(big);
}

void mr_buf_free(struct mr_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void mr_json_write_string(struct mr_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;

    mr_buf_put(b, "\"", 1);
    while (p < end) {
        unsigned cp;
        int len = utf8_len(p, end, &cp);

        if (!len) { /* not UTF-8 (an argument's byte): as Python's surrogateescape reads it */
            cp = 0xdc00 + *p;
            len = 1;
        } /* a lone surrogate kept by parse_string is 3 bytes here, and goes out as \udcXX */
        p += len;
        switch (cp) {
        case '"': mr_buf_put(b, "\\\"", 2); continue;
        case '\\': mr_buf_put(b, "\\\\", 2); continue;
        case '\n': mr_buf_put(b, "\\n", 2); continue;
        case '\r': mr_buf_put(b, "\\r", 2); continue;
        case '\t': mr_buf_put(b, "\\t", 2); continue;
        case '\b': mr_buf_put(b, "\\b", 2); continue;
        case '\f': mr_buf_put(b, "\\f", 2); continue;
        }
        if (cp >= 0x20 && cp < 0x7f) {
            char c = (char)cp;

            mr_buf_put(b, &c, 1);
        } else if (cp < 0x10000) {
            mr_buf_printf(b, "\\u%04x", cp);
        } else {
            cp -= 0x10000;
            mr_buf_printf(b, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
        }
    }
    mr_buf_put(b, "\"", 1);
}

void mr_json_newline(struct mr_buf *b, int indent, int level)
{
    if (indent < 0)
        return;
    mr_buf_put(b, "\n", 1);
    for (int i = 0; i < indent * level; i++)
        mr_buf_put(b, " ", 1);
}

void mr_json_write(struct mr_buf *b, const struct mr_json *v, int indent, int level)
{
    switch (v->type) {
    case MJ_NULL: mr_buf_puts(b, "null"); return;
    case MJ_FALSE: mr_buf_puts(b, "false"); return;
    case MJ_TRUE: mr_buf_puts(b, "true"); return;
    case MJ_NUMBER: mr_buf_put(b, v->text, v->len); return;
    case MJ_STRING: mr_json_write_string(b, v->text, v->len); return;
    default: break;
    }
    int object = v->type == MJ_OBJECT;

    if (!v->child) {
        mr_buf_puts(b, object ? "{}" : "[]");
        return;
    }
    mr_buf_puts(b, object ? "{" : "[");
    for (const struct mr_json *c = v->child; c; c = c->next) {
        if (c != v->child)
            mr_buf_puts(b, indent < 0 ? ", " : ",");
        mr_json_newline(b, indent, level + 1);
        if (object) {
            mr_json_write_string(b, c->key, c->key_len);
            mr_buf_puts(b, ": ");
        }
        mr_json_write(b, c, indent, level + 1);
    }
    mr_json_newline(b, indent, level);
    mr_buf_puts(b, object ? "}" : "]");
}
