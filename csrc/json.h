/*
 * json.h - the small, strict JSON reader and writer of the native OCI verbs (ociverbs.c).
 *
 * The reader takes what minirun's state.json holds (RFC 8259, UTF-8) into a tree; the
 * writer prints a tree, or single strings, exactly as Python's json.dumps does with
 * ensure_ascii (minirun/jsonlite.py writes state.json, and engines compare `state`
 * and `list` output with runc's): numbers are kept as the text they were read as.
 */
#ifndef MINIRUN_JSON_H
#define MINIRUN_JSON_H

#include <stddef.h>

enum mr_json_type { MJ_NULL, MJ_FALSE, MJ_TRUE, MJ_NUMBER, MJ_STRING, MJ_ARRAY, MJ_OBJECT };

struct mr_json {
    enum mr_json_type type;
    char *text;            /* a string's value (UTF-8, NUL-terminated), a number's text */
    size_t len;            /* its length in bytes */
    char *key;             /* the member's name, inside an object */
    size_t key_len;
    struct mr_json *child; /* first element or member */
    struct mr_json *next;  /* the following one in the parent */
};

/* The tree of `text`, or NULL (malloc failed, or not JSON). */
struct mr_json *mr_json_parse(const char *text, size_t len);
void mr_json_free(struct mr_json *v);

/* An object's member (the last of its name, as Python's dict keeps it), or NULL. */
const struct mr_json *mr_json_get(const struct mr_json *obj, const char *key);
const char *mr_json_str(const struct mr_json *v);      /* NULL unless a string */
int mr_json_int(const struct mr_json *v, long long *out); /* 0 and *out if an integer, else -1 */
int mr_json_truthy(const struct mr_json *v);           /* Python's bool() of the value; NULL: 0 */
size_t mr_json_count(const struct mr_json *v);         /* elements of an array or members of an object */

/* A growing output buffer; `failed` once an allocation failed (the text is then incomplete). */
struct mr_buf {
    char *p;
    size_t len, cap;
    int failed;
};
void mr_buf_put(struct mr_buf *b, const char *s, size_t n);
void mr_buf_puts(struct mr_buf *b, const char *s);
void mr_buf_printf(struct mr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mr_buf_free(struct mr_buf *b);

/* Python's json.dumps: a string as ensure_ascii writes it; a value with `indent` spaces
 * per level (< 0: on one line with ", " and ": "), `level` levels in already. */
void mr_json_write_string(struct mr_buf *b, const char *s, size_t n);
void mr_json_write(struct mr_buf *b, const struct mr_json *v, int indent, int level);
void mr_json_newline(struct mr_buf *b, int indent, int level); /* what comes before an element */

#endif
