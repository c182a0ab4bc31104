/* Column-wise helpers for record ids: BLAKE3-256 of every value of a binary column in one call, and
 * record ids between hex text and 32-byte digests.
 *
 * BLAKE3 is the reference algorithm (portable C, no SIMD), written from the specification: the same
 * digests as the `blake3` package for every input length (tests/io/test_native_hashing.py checks
 * lengths across the block, chunk and tree boundaries). What it saves is the Python call per record:
 * a million short records are hashed in one call, with the GIL released, so two threads can share
 * the work.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define BLOCK_LEN 64
#define CHUNK_LEN 1024
#define CHUNK_START 1u
#define CHUNK_END 2u
#define PARENT 4u
#define ROOT 8u
#define MAX_DEPTH 64

static const uint32_t IV[8] = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
                               0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};
/* The message word order of each round: the permutation (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14,
 * 15, 8) applied once more per round. A constant table, so that the unrolled rounds index it at compile time. */
static const uint8_t SCHEDULE[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

static inline uint32_t rotr(uint32_t w, unsigned c) { return (w >> c) | (w << (32 - c)); }

static inline void g(uint32_t *v, int a, int b, int c, int d, uint32_t x, uint32_t y) {
    v[a] = v[a] + v[b] + x;
    v[d] = rotr(v[d] ^ v[a], 16);
    v[c] = v[c] + v[d];
    v[b] = rotr(v[b] ^ v[c], 12);
    v[a] = v[a] + v[b] + y;
    v[d] = rotr(v[d] ^ v[a], 8);
    v[c] = v[c] + v[d];
    v[b] = rotr(v[b] ^ v[c], 7);
}

/* cv <- the first 8 words of the compression of one block (the chaining value, or the first 32
 * bytes of the root output when `flags` has ROOT). */
static void compress(uint32_t cv[8], const uint32_t m[16], uint64_t counter, uint32_t block_len, uint32_t flags) {
    uint32_t v[16] = {cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7],
                      IV[0], IV[1], IV[2], IV[3], (uint32_t)counter, (uint32_t)(counter >> 32), block_len, flags};
#define ROUND(r)                                                    \
    do {                                                            \
        const uint8_t *s = SCHEDULE[r];                             \
        g(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);                        \
        g(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);                        \
        g(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);                       \
        g(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);                       \
        g(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);                       \
        g(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);                     \
        g(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);                      \
        g(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);                      \
    } while (0)
    ROUND(0);
    ROUND(1);
    ROUND(2);
    ROUND(3);
    ROUND(4);
    ROUND(5);
    ROUND(6);
#undef ROUND
    for (int i = 0; i < 8; i++) cv[i] = v[i] ^ v[i + 8];
}

static void load_block(uint32_t m[16], const uint8_t *in, size_t len) {
    uint8_t block[BLOCK_LEN];
    const uint8_t *p = in;
    if (len < BLOCK_LEN) {
        memset(block, 0, BLOCK_LEN);
        if (len) memcpy(block, in, len);
        p = block;
    }
    for (int i = 0; i < 16; i++)
        m[i] = (uint32_t)p[4 * i] | ((uint32_t)p[4 * i + 1] << 8) | ((uint32_t)p[4 * i + 2] << 16) |
               ((uint32_t)p[4 * i + 3] << 24);
}

/* The chaining value of one chunk (at most CHUNK_LEN bytes; `extra` is ROOT for a one-chunk input). */
static void chunk_cv(const uint8_t *in, size_t len, uint64_t counter, uint32_t extra, uint32_t cv[8]) {
    uint32_t m[16];
    size_t blocks = len == 0 ? 1 : (len + BLOCK_LEN - 1) / BLOCK_LEN;
    memcpy(cv, IV, sizeof(IV));
    for (size_t b = 0; b < blocks; b++) {
        int last = b == blocks - 1;
        size_t n = last ? len - b * BLOCK_LEN : BLOCK_LEN;
        uint32_t flags = (b == 0 ? CHUNK_START : 0) | (last ? CHUNK_END | extra : 0);
        load_block(m, in + b * BLOCK_LEN, n);
        compress(cv, m, counter, (uint32_t)n, flags);
    }
}

static void parent_cv(const uint32_t left[8], const uint32_t right[8], uint32_t extra, uint32_t out[8]) {
    uint32_t m[16];
    memcpy(m, left, 32);
    memcpy(m + 8, right, 32);
    memcpy(out, IV, sizeof(IV));
    compress(out, m, 0, BLOCK_LEN, PARENT | extra);
}

static void hash_one(const uint8_t *in, size_t len, uint8_t out[32]) {
    uint32_t stack[MAX_DEPTH][8];
    int depth = 0;
    uint64_t chunk = 0;
    uint32_t cv[8];
    while (len > CHUNK_LEN) {
        /* A whole chunk followed by more input: merge completed subtrees (the reference's stack). */
        chunk_cv(in, CHUNK_LEN, chunk, 0, cv);
        chunk++;
        for (uint64_t total = chunk; (total & 1) == 0; total >>= 1) parent_cv(stack[--depth], cv, 0, cv);
        memcpy(stack[depth++], cv, 32);
        in += CHUNK_LEN;
        len -= CHUNK_LEN;
    }
    chunk_cv(in, len, chunk, depth == 0 ? ROOT : 0, cv);
    while (depth > 0) {
        depth--;
        parent_cv(stack[depth], cv, depth == 0 ? ROOT : 0, cv);
    }
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)cv[i];
        out[4 * i + 1] = (uint8_t)(cv[i] >> 8);
        out[4 * i + 2] = (uint8_t)(cv[i] >> 16);
        out[4 * i + 3] = (uint8_t)(cv[i] >> 24);
    }
}

/* Eight short inputs (one chunk each, at most CHUNK_LEN bytes) at once, one per vector lane: the
 * approach of the reference implementation's hash_many, with GCC/Clang vector extensions. Lanes
 * whose input has fewer blocks keep their chaining value while the others go on. On x86-64 Linux an
 * AVX2 build of it is chosen at load time where the CPU has AVX2; elsewhere the compiler splits the
 * vectors into what the target has. */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LANES 8
typedef uint32_t lanes_t __attribute__((vector_size(4 * LANES)));

#if defined(__x86_64__) && defined(__linux__) && !defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define MULTIVERSION
#endif

#define VROTR(w, c) (((w) >> (c)) | ((w) << (32 - (c))))
#define VG(a, b, c, d, x, y)           \
    do {                               \
        v[a] = v[a] + v[b] + (x);      \
        v[d] = VROTR(v[d] ^ v[a], 16); \
        v[c] = v[c] + v[d];            \
        v[b] = VROTR(v[b] ^ v[c], 12); \
        v[a] = v[a] + v[b] + (y);      \
        v[d] = VROTR(v[d] ^ v[a], 8);  \
        v[c] = v[c] + v[d];            \
        v[b] = VROTR(v[b] ^ v[c], 7);  \
    } while (0)

MULTIVERSION
static void hash_lanes(const uint8_t *const in[LANES], const size_t len[LANES], uint8_t *const out[LANES]) {
    lanes_t cv[8], m[16];
    size_t blocks[LANES], most = 1;
    for (int k = 0; k < LANES; k++) {
        blocks[k] = len[k] == 0 ? 1 : (len[k] + BLOCK_LEN - 1) / BLOCK_LEN;
        if (blocks[k] > most) most = blocks[k];
    }
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < LANES; k++) cv[i][k] = IV[i];
    for (size_t b = 0; b < most; b++) {
        lanes_t block_len, flags, active;
        for (int k = 0; k < LANES; k++) {
            uint32_t words[16] = {0};
            int live = b < blocks[k];
            int last = b == blocks[k] - 1;
            size_t n = live ? (last ? len[k] - b * BLOCK_LEN : BLOCK_LEN) : 0;
            if (n) memcpy(words, in[k] + b * BLOCK_LEN, n);
            for (int w = 0; w < 16; w++) m[w][k] = words[w];
            block_len[k] = (uint32_t)n;
            flags[k] = (b == 0 ? CHUNK_START : 0) | (last ? CHUNK_END | ROOT : 0);
            active[k] = live ? 0xFFFFFFFFu : 0;
        }
        const lanes_t zero = {0};
        lanes_t v[16] = {cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7],
                         zero + IV[0], zero + IV[1], zero + IV[2], zero + IV[3],
                         zero, zero, /* the chunk counter: 0 for a one-chunk input */
                         block_len, flags};
        for (int r = 0; r < 7; r++) {
            const uint8_t *sc = SCHEDULE[r];
            VG(0, 4, 8, 12, m[sc[0]], m[sc[1]]);
            VG(1, 5, 9, 13, m[sc[2]], m[sc[3]]);
            VG(2, 6, 10, 14, m[sc[4]], m[sc[5]]);
            VG(3, 7, 11, 15, m[sc[6]], m[sc[7]]);
            VG(0, 5, 10, 15, m[sc[8]], m[sc[9]]);
            VG(1, 6, 11, 12, m[sc[10]], m[sc[11]]);
            VG(2, 7, 8, 13, m[sc[12]], m[sc[13]]);
            VG(3, 4, 9, 14, m[sc[14]], m[sc[15]]);
        }
        for (int i = 0; i < 8; i++) cv[i] = ((v[i] ^ v[i + 8]) & active) | (cv[i] & ~active);
    }
    for (int k = 0; k < LANES; k++)
        for (int i = 0; i < 8; i++) {
            uint32_t w = cv[i][k];
            out[k][4 * i] = (uint8_t)w;
            out[k][4 * i + 1] = (uint8_t)(w >> 8);
            out[k][4 * i + 2] = (uint8_t)(w >> 16);
            out[k][4 * i + 3] = (uint8_t)(w >> 24);
        }
}
#undef VG
#undef VROTR
#endif

static int contiguous(PyObject *obj, Py_buffer *view, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous buffer", what);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(digests_doc,
             "digests(data, offsets) -> bytes\n\n"
             "The 32-byte BLAKE3 digests, end to end, of data[offsets[i]:offsets[i+1]] for each i; offsets are\n"
             "native int64 and must rise within the data.");

static PyObject *digests(PyObject *self, PyObject *args) {
    PyObject *data_obj, *offsets_obj;
    if (!PyArg_ParseTuple(args, "OO", &data_obj, &offsets_obj)) return NULL;
    Py_buffer data, offsets;
    if (contiguous(data_obj, &data, "data") < 0) return NULL;
    if (contiguous(offsets_obj, &offsets, "offsets") < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    PyObject *result = NULL;
    if (offsets.len % 8 != 0 || offsets.len < 8) {
        PyErr_SetString(PyExc_ValueError, "offsets must hold at least one int64");
        goto done;
    }
    Py_ssize_t n = offsets.len / 8 - 1;
    const int64_t *off = (const int64_t *)offsets.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (off[i] < 0 || off[i + 1] < off[i] || off[i + 1] > data.len) {
            PyErr_Format(PyExc_ValueError, "offsets must rise within the data (at %zd)", i);
            goto done;
        }
    }
    result = PyBytes_FromStringAndSize(NULL, n * 32);
    if (result == NULL) goto done;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
    const uint8_t *base = (const uint8_t *)data.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) hash_one(base + off[i], (size_t)(off[i + 1] - off[i]), out + 32 * i);
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return result;
}

/* One piece of every row's encoding: the same bytes in every row, or row i's slice of a column. */
typedef struct {
    Py_buffer view;
    const int64_t *offsets; /* NULL for a constant */
    int64_t constant_len;
} Piece;

static void release_pieces(Piece *pieces, Py_ssize_t count) {
    for (Py_ssize_t k = 0; k < count; k++) PyBuffer_Release(&pieces[k].view);
}

#ifdef LANES
#define LANES_OR_ONE LANES
#else
#define LANES_OR_ONE 1
#endif

static inline size_t row_size(const Piece *pieces, Py_ssize_t count, Py_ssize_t i) {
    size_t total = 0;
    for (Py_ssize_t k = 0; k < count; k++)
        total += pieces[k].offsets ? (size_t)(pieces[k].offsets[i + 1] - pieces[k].offsets[i])
                                   : (size_t)pieces[k].constant_len;
    return total;
}

/* Row i's encoding, written to `to` (which holds row_size bytes). */
static inline void gather_row(const Piece *pieces, Py_ssize_t count, Py_ssize_t i, uint8_t *to) {
    for (Py_ssize_t k = 0; k < count; k++) {
        const Piece *piece = &pieces[k];
        const uint8_t *base = (const uint8_t *)piece->view.buf;
        size_t len;
        if (piece->offsets) {
            len = (size_t)(piece->offsets[i + 1] - piece->offsets[i]);
            base += piece->offsets[i];
        } else {
            len = (size_t)piece->constant_len;
        }
        if (len) memcpy(to, base, len);
        to += len;
    }
}

/* Hash row i on its own into `out`, growing the buffer as needed; 1 when memory ran out. */
static int hash_row(const Piece *pieces, Py_ssize_t count, Py_ssize_t i, uint8_t **buffer, size_t *capacity,
                    uint8_t *out) {
    size_t total = row_size(pieces, count, i);
    if (total > *capacity) {
        size_t grown = *capacity;
        while (grown < total) grown *= 2;
        uint8_t *bigger = PyMem_RawRealloc(*buffer, grown);
        if (bigger == NULL) return 1;
        *buffer = bigger;
        *capacity = grown;
    }
    gather_row(pieces, count, i, *buffer);
    hash_one(*buffer, total, out);
    return 0;
}

PyDoc_STRVAR(row_digests_doc,
             "row_digests(pieces, n) -> bytes\n\n"
             "The 32-byte BLAKE3 digests, end to end, of n rows, row i being the concatenation of every piece's\n"
             "part for row i. A piece is bytes (the same in every row) or a (data, offsets) pair: row i's part\n"
             "is data[offsets[i]:offsets[i+1]], offsets being n + 1 native int64 rising within the data.");

static PyObject *row_digests(PyObject *self, PyObject *args) {
    PyObject *list;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "O!n", &PyList_Type, &list, &n)) return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "n must not be negative");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(list);
    Piece *pieces = PyMem_Calloc(count ? count : 1, sizeof(Piece));
    Py_buffer *offset_views = PyMem_Calloc(count ? count : 1, sizeof(Py_buffer));
    if (pieces == NULL || offset_views == NULL) {
        PyMem_Free(pieces);
        PyMem_Free(offset_views);
        return PyErr_NoMemory();
    }
    Py_ssize_t held = 0, held_offsets = 0;
    PyObject *result = NULL;
    uint8_t *buffer = NULL;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *item = PyList_GET_ITEM(list, k);
        Piece *piece = &pieces[k];
        if (PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2) {
            if (contiguous(PyTuple_GET_ITEM(item, 0), &piece->view, "a piece's data") < 0) goto done;
            held++;
            if (contiguous(PyTuple_GET_ITEM(item, 1), &offset_views[k], "a piece's offsets") < 0) goto done;
            held_offsets = k + 1;
            if (offset_views[k].len != (n + 1) * 8) {
                PyErr_SetString(PyExc_ValueError, "a piece's offsets must hold n + 1 int64");
                goto done;
            }
            piece->offsets = (const int64_t *)offset_views[k].buf;
            for (Py_ssize_t i = 0; i < n; i++) {
                if (piece->offsets[i] < 0 || piece->offsets[i + 1] < piece->offsets[i] ||
                    piece->offsets[i + 1] > piece->view.len) {
                    PyErr_Format(PyExc_ValueError, "offsets must rise within the data (piece %zd, row %zd)", k, i);
                    goto done;
                }
            }
        } else {
            if (contiguous(item, &piece->view, "a piece") < 0) goto done;
            held++;
            piece->constant_len = piece->view.len;
        }
    }
    result = PyBytes_FromStringAndSize(NULL, n * 32);
    if (result == NULL) goto done;
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
    size_t capacity = LANES_OR_ONE * CHUNK_LEN;
    buffer = PyMem_RawMalloc(capacity);
    if (buffer == NULL) {
        Py_CLEAR(result);
        PyErr_NoMemory();
        goto done;
    }
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t i = 0;
#ifdef LANES
    /* Rows in groups of LANES, hashed side by side when each fits in one chunk; a group with a longer
     * row is hashed row by row. */
    for (; i + LANES <= n && !failed; i += LANES) {
        const uint8_t *in[LANES];
        uint8_t *dest[LANES];
        size_t lens[LANES];
        int fits = 1;
        for (int k = 0; k < LANES; k++) {
            lens[k] = row_size(pieces, count, i + k);
            fits &= lens[k] <= CHUNK_LEN;
        }
        if (!fits) {
            for (int k = 0; k < LANES && !failed; k++)
                failed = hash_row(pieces, count, i + k, &buffer, &capacity, out + 32 * (i + k));
            continue;
        }
        for (int k = 0; k < LANES; k++) {
            uint8_t *slot = buffer + (size_t)k * CHUNK_LEN;
            gather_row(pieces, count, i + k, slot);
            in[k] = slot;
            dest[k] = out + 32 * (i + k);
        }
        hash_lanes(in, lens, dest);
    }
#endif
    for (; i < n && !failed; i++) failed = hash_row(pieces, count, i, &buffer, &capacity, out + 32 * i);
    Py_END_ALLOW_THREADS
    if (failed) {
        Py_CLEAR(result);
        PyErr_NoMemory();
    }
done:
    PyMem_RawFree(buffer);
    for (Py_ssize_t k = 0; k < held_offsets; k++)
        if (offset_views[k].obj != NULL) PyBuffer_Release(&offset_views[k]);
    release_pieces(pieces, held);
    PyMem_Free(offset_views);
    PyMem_Free(pieces);
    return result;
}

static const char HEX[] = "0123456789abcdef";

PyDoc_STRVAR(to_hex_doc, "to_hex(data) -> bytearray\n\nLowercase hex of the bytes of a buffer (twice as long).");

static PyObject *to_hex(PyObject *self, PyObject *arg) {
    Py_buffer data;
    if (contiguous(arg, &data, "data") < 0) return NULL;
    PyObject *result = PyByteArray_FromStringAndSize(NULL, data.len * 2);
    if (result != NULL) {
        uint8_t *out = (uint8_t *)PyByteArray_AS_STRING(result);
        const uint8_t *in = (const uint8_t *)data.buf;
        Py_ssize_t len = data.len;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < len; i++) {
            out[2 * i] = (uint8_t)HEX[in[i] >> 4];
            out[2 * i + 1] = (uint8_t)HEX[in[i] & 15];
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&data);
    return result;
}

/* A character's value as a lowercase hex digit, 16 for anything else. */
static uint8_t NIBBLE[256];

static void init_nibbles(void) {
    memset(NIBBLE, 16, sizeof(NIBBLE));
    for (int i = 0; i < 16; i++) NIBBLE[(uint8_t)HEX[i]] = (uint8_t)i;
}

PyDoc_STRVAR(from_hex_doc,
             "from_hex(text, width) -> (bytearray, bytearray)\n\n"
             "Rows of `width` bytes from rows of 2 * width lowercase hex characters, end to end, and one\n"
             "byte per row: 1 where the row was valid hex, 0 where it was not (its bytes are then zero).");

static PyObject *from_hex(PyObject *self, PyObject *args) {
    PyObject *text_obj;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "On", &text_obj, &width)) return NULL;
    if (width <= 0) {
        PyErr_SetString(PyExc_ValueError, "width must be positive");
        return NULL;
    }
    Py_buffer text;
    if (contiguous(text_obj, &text, "text") < 0) return NULL;
    PyObject *binary = NULL, *valid = NULL, *result = NULL;
    if (text.len % (2 * width) != 0) {
        PyErr_SetString(PyExc_ValueError, "the text is not whole rows");
        goto done;
    }
    Py_ssize_t rows = text.len / (2 * width);
    binary = PyByteArray_FromStringAndSize(NULL, rows * width);
    valid = PyByteArray_FromStringAndSize(NULL, rows);
    if (binary == NULL || valid == NULL) goto done;
    uint8_t *out = (uint8_t *)PyByteArray_AS_STRING(binary);
    uint8_t *ok = (uint8_t *)PyByteArray_AS_STRING(valid);
    const uint8_t *in = (const uint8_t *)text.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows; r++) {
        int good = 1;
        uint8_t *row = out + r * width;
        const uint8_t *src = in + r * 2 * width;
        uint8_t bad = 0;
        for (Py_ssize_t i = 0; i < width; i++) {
            uint8_t hi = NIBBLE[src[2 * i]], lo = NIBBLE[src[2 * i + 1]];
            bad |= hi | lo;
            row[i] = (uint8_t)((hi << 4) | (lo & 15));
        }
        good = (bad & 16) == 0;
        ok[r] = (uint8_t)good;
        if (!good) memset(row, 0, (size_t)width);
    }
    Py_END_ALLOW_THREADS
    result = PyTuple_Pack(2, binary, valid);
done:
    Py_XDECREF(binary);
    Py_XDECREF(valid);
    PyBuffer_Release(&text);
    return result;
}

static PyMethodDef methods[] = {
    {"digests", digests, METH_VARARGS, digests_doc},
    {"row_digests", row_digests, METH_VARARGS, row_digests_doc},
    {"to_hex", to_hex, METH_O, to_hex_doc},
    {"from_hex", from_hex, METH_VARARGS, from_hex_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "dataward.domain._native", "Column-wise BLAKE3 and hex for record ids.", -1, methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    init_nibbles();
    return PyModule_Create(&module);
}
