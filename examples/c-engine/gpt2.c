/* A GPT-2 forward pass in C99 with no dependency but the C standard library: the kind of from-scratch
 * engine gpt2core verifies. It reads a Hugging Face GPT-2 directory (config.json, model.safetensors) and a
 * gpt2core reference set (cases.txt, <case>/input_ids.npy, attention_mask.npy, position_ids.npy), runs every
 * case, and writes its checkpoints in ITS natural layout (map.json declares it):
 *   fused QKV [T, 3C] with heads last, attention scores and probabilities [H, T, T] with masked scores -inf,
 *   logits padded to a multiple of 64, and no batch axis for a case of one row.
 *
 *   gpt2 MODEL_DIR REFERENCES_DIR DUMPS_DIR
 *
 * Every mode the map declares, each case run in each (the reference set gives each mode's inputs):
 *   chained    <case>/<name>.npy: the forward pass from the token ids
 *   isolated   <case>/stage/<name>.npy: each stage on the reference's own inputs (<references>/<case>/<name>.npy)
 *   cached     <case>/decode/t<t>/<name>.npy: a KV cache per row; the unrelated request (unrelated_ids.npy) prefilled,
 *              the cache cleared, positions [0, split) prefilled (decode_split.npy), then one position at a time,
 *              each step's checkpoints written with the cache's keys and values (h<i>_kcache, h<i>_vcache)
 *   generate   <case>/generated_ids.npy: greedy, generate_tokens.npy new tokens per row, with the cache
 *   sampled    <case>/sample.scores@step=N.npy: along the path in sample_ids.npy, the last logits as float32,
 *              then temperature, top-k, top-p (sample_settings.npy), in that order, as transformers
 *
 * Build: `make` (float32, ./gpt2), `make gpt2_f64` (float64) or `make gpt2_f16` (float16 storage: weights and
 * every checkpoint rounded to float16, sums in double; map-f16.json). Faults for the tests, one at a time:
 * -DFAULT_SCALE_1_OVER_D, -DFAULT_NO_CAUSAL_MASK, -DFAULT_EXACT_GELU, -DFAULT_LN_EPS_1E3,
 * -DFAULT_POSITIONS_OFF_BY_ONE, -DFAULT_KV_SWAPPED, and the cache's and the sampler's:
 * -DFAULT_CACHE_NOT_CLEARED (between requests), -DFAULT_DECODE_POSITION_OFF_BY_ONE (a decoding step's position),
 * -DFAULT_CACHE_ONE_SLOT_LATE (a decoding step's key and value), -DFAULT_TOP_K_PLUS_ONE (top-k keeps k + 1).
 * Sums are accumulated in double whatever the engine's type. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(USE_DOUBLE)
typedef double real;
typedef double weight;
#define NPY_DESCR "<f8"
#elif defined(USE_HALF) /* float16 storage: every weight rounded to float16 (held as float, which is exact), every
                         * activation and checkpoint a _Float16; sums still accumulated in double */
__extension__ typedef _Float16 real;
typedef float weight;
#define NPY_DESCR "<f2"
#else
typedef float real;
typedef float weight;
#define NPY_DESCR "<f4"
#endif

static void die(const char *what, const char *detail) {
    fprintf(stderr, "gpt2: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

static void *xmalloc(size_t n) {
    void *p = calloc(n ? n : 1, 1);
    if (!p) die("out of memory", NULL);
    return p;
}

static char *read_file(const char *path, long *size) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = xmalloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) die("cannot read", path);
    fclose(f);
    buf[n] = 0;
    if (size) *size = n;
    return buf;
}

/* ---- config.json: the few numbers GPT-2 needs ---- */
typedef struct { int V, P, C, L, H, D, F; double eps; } Config;

static double json_number(const char *json, const char *key, double fallback) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\"", key);
    const char *p = strstr(json, pattern);
    if (!p) return fallback;
    p = strchr(p + strlen(pattern), ':');
    if (!p) return fallback;
    p++;
    while (*p == ' ') p++;
    if (strncmp(p, "null", 4) == 0) return fallback;
    return strtod(p, NULL);
}

/* ---- model.safetensors: header JSON, then the raw little-endian tensors ---- */
typedef struct { char *file; long size; const char *header; uint64_t header_len; } Safetensors;

static weight *tensor(const Safetensors *st, const char *name, long expected) {
    char key[256];
    const char *p = NULL;
    snprintf(key, sizeof key, "\"transformer.%s\"", name);
    p = strstr(st->header, key);
    if (!p) {
        snprintf(key, sizeof key, "\"%s\"", name);
        p = strstr(st->header, key);
    }
    if (!p) die("tensor not in model.safetensors", name);
    const char *dtype = strstr(p, "\"dtype\"");
    const char *offsets = strstr(p, "\"data_offsets\"");
    if (!dtype || !offsets) die("malformed safetensors header at", name);
    dtype = strchr(dtype + 7, '"') + 1;
    int is_f64 = strncmp(dtype, "F64", 3) == 0;
    if (!is_f64 && strncmp(dtype, "F32", 3) != 0) die("tensor is neither F32 nor F64", name);
    offsets = strchr(offsets, '[') + 1;
    char *end;
    uint64_t start = strtoull(offsets, &end, 10);
    uint64_t stop = strtoull(strchr(end, ',') + 1, NULL, 10);
    long count = (long)((stop - start) / (is_f64 ? 8 : 4));
    if (count != expected) die("tensor of unexpected size", name);
    const char *data = st->file + 8 + st->header_len + start;
    if ((long)(8 + st->header_len + stop) > st->size) die("truncated model.safetensors at", name);
    weight *out = xmalloc(sizeof(weight) * (size_t)count);
    for (long i = 0; i < count; i++) {  /* rounded to the engine's type (float16 too), held as a weight */
        if (is_f64) { double v; memcpy(&v, data + 8 * i, 8); out[i] = (weight)(real)v; }
        else { float v; memcpy(&v, data + 4 * i, 4); out[i] = (weight)(real)v; }
    }
    return out;
}

typedef struct { weight *ln1_g, *ln1_b, *attn_w, *attn_b, *proj_w, *proj_b, *ln2_g, *ln2_b, *fc_w, *fc_b, *mproj_w, *mproj_b; } Block;
typedef struct {
    Config cfg;
    weight *wte, *wpe, *lnf_g, *lnf_b;
    weight *wte_t;  /* wte transposed, [C, V]: lm_head reads it a row at a time, a loop the compiler vectorizes */
    Block *blocks;
} Model;

static Model load_model(const char *dir) {
    Model m;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *json = read_file(path, NULL);
    Config *c = &m.cfg;
    c->V = (int)json_number(json, "vocab_size", 0);
    c->P = (int)json_number(json, "n_positions", 1024);
    c->C = (int)json_number(json, "n_embd", 0);
    c->L = (int)json_number(json, "n_layer", 0);
    c->H = (int)json_number(json, "n_head", 0);
    c->F = (int)json_number(json, "n_inner", 4 * c->C);
    c->eps = json_number(json, "layer_norm_epsilon", 1e-5);
    free(json);
    if (c->V <= 0 || c->C <= 0 || c->L <= 0 || c->H <= 0 || c->C % c->H) die("config.json is not a GPT-2 config", dir);
    c->D = c->C / c->H;
    Safetensors st;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st.file = read_file(path, &st.size);
    if (st.size < 8) die("truncated", path);
    memcpy(&st.header_len, st.file, 8);
    if ((long)(8 + st.header_len) > st.size) die("truncated header in", path);
    char *header = xmalloc(st.header_len + 1);
    memcpy(header, st.file + 8, st.header_len);
    st.header = header;
    long C = c->C, F = c->F;
    m.wte = tensor(&st, "wte.weight", (long)c->V * C);
    m.wte_t = xmalloc(sizeof(weight) * (size_t)c->V * (size_t)C);
    for (long v = 0; v < c->V; v++)
        for (long i = 0; i < C; i++) m.wte_t[i * c->V + v] = m.wte[v * C + i];
    m.wpe = tensor(&st, "wpe.weight", (long)c->P * C);
    m.lnf_g = tensor(&st, "ln_f.weight", C);
    m.lnf_b = tensor(&st, "ln_f.bias", C);
    m.blocks = xmalloc(sizeof(Block) * (size_t)c->L);
    for (int i = 0; i < c->L; i++) {
        Block *b = &m.blocks[i];
        char name[128];
#define LOAD(field, suffix, n) snprintf(name, sizeof name, "h.%d.%s", i, suffix); b->field = tensor(&st, name, n)
        LOAD(ln1_g, "ln_1.weight", C); LOAD(ln1_b, "ln_1.bias", C);
        LOAD(attn_w, "attn.c_attn.weight", C * 3 * C); LOAD(attn_b, "attn.c_attn.bias", 3 * C);
        LOAD(proj_w, "attn.c_proj.weight", C * C); LOAD(proj_b, "attn.c_proj.bias", C);
        LOAD(ln2_g, "ln_2.weight", C); LOAD(ln2_b, "ln_2.bias", C);
        LOAD(fc_w, "mlp.c_fc.weight", C * F); LOAD(fc_b, "mlp.c_fc.bias", F);
        LOAD(mproj_w, "mlp.c_proj.weight", F * C); LOAD(mproj_b, "mlp.c_proj.bias", C);
#undef LOAD
#ifdef FAULT_KV_SWAPPED /* a loader bug: c_attn's key and value column blocks read in the wrong order */
        for (long r = 0; r < C; r++)
            for (long j = 0; j < C; j++) {
                weight t = b->attn_w[r * 3 * C + C + j];
                b->attn_w[r * 3 * C + C + j] = b->attn_w[r * 3 * C + 2 * C + j];
                b->attn_w[r * 3 * C + 2 * C + j] = t;
            }
        for (long j = 0; j < C; j++) { weight t = b->attn_b[C + j]; b->attn_b[C + j] = b->attn_b[2 * C + j]; b->attn_b[2 * C + j] = t; }
#endif
    }
    free(header);
    free(st.file);
    return m;
}

/* ---- .npy files ---- */
static char *npy_header(const char *buf, long size, const char *path, long *data_at) {
    if (size < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) die("not a .npy file", path);
    int major = buf[6];
    uint32_t hlen = 0;
    int off = major == 1 ? 10 : 12;
    if (major == 1) hlen = (uint8_t)buf[8] | ((uint32_t)(uint8_t)buf[9] << 8);
    else memcpy(&hlen, buf + 8, 4);
    if (strstr(buf + off, "'fortran_order': True")) die("expected C order in", path);
    *data_at = off + (long)hlen;
    return (char *)buf + off;
}

/* the element count of the header's shape (a 0-d array: 1) */
static long npy_count(const char *header, int *dims, int max_dims, int *ndim) {
    const char *p = strchr(strstr(header, "'shape'"), '(') + 1;
    long n = 1;
    *ndim = 0;
    while (*p && *p != ')') {
        char *end;
        long d = strtol(p, &end, 10);
        if (end == p) { p++; continue; }
        if (*ndim < max_dims) dims[*ndim] = (int)d;
        (*ndim)++;
        n *= d;
        p = end;
    }
    return n;
}

static int64_t *read_npy_i64(const char *path, int *rows, int *cols) {
    long size, at;
    char *buf = read_file(path, &size);
    char *header = npy_header(buf, size, path, &at);
    if (!strstr(header, "'<i8'")) die("expected little-endian int64 in", path);
    int dims[2] = {1, 1}, ndim;
    long n = npy_count(header, dims, 2, &ndim);
    if (ndim > 2) die("expected at most 2 axes in", path);
    *rows = ndim == 2 ? dims[0] : 1;
    *cols = ndim == 2 ? dims[1] : (ndim == 1 ? dims[0] : 1);
    if (at + 8 * n > size) die("truncated .npy file", path);
    int64_t *out = xmalloc(sizeof(int64_t) * (size_t)n);
    memcpy(out, buf + at, sizeof(int64_t) * (size_t)n);
    free(buf);
    return out;
}

/* A float64 file of `expected` values (the sampler's settings), read as they are. */
static void read_npy_f64(const char *path, double *out, long expected) {
    long size, at;
    char *buf = read_file(path, &size);
    char *header = npy_header(buf, size, path, &at);
    int dims[8], ndim;
    if (!strstr(header, "'<f8'") || npy_count(header, dims, 8, &ndim) != expected) die("expected float64 values in", path);
    if (at + 8 * expected > size) die("truncated .npy file", path);
    memcpy(out, buf + at, sizeof(double) * (size_t)expected);
    free(buf);
}

/* A reference checkpoint (float32 or float64, gpt2core's layout) as `real`, `expected` elements. */
static real *read_npy_real(const char *path, long expected) {
    long size, at;
    char *buf = read_file(path, &size);
    char *header = npy_header(buf, size, path, &at);
    int f8 = strstr(header, "'<f8'") != NULL;
    if (!f8 && !strstr(header, "'<f4'")) die("expected little-endian float32 or float64 in", path);
    int dims[8], ndim;
    long n = npy_count(header, dims, 8, &ndim);
    if (n != expected) die("a reference file of unexpected size", path);
    if (at + (f8 ? 8 : 4) * n > size) die("truncated .npy file", path);
    real *out = xmalloc(sizeof(real) * (size_t)n);
    for (long i = 0; i < n; i++) {
        if (f8) { double v; memcpy(&v, buf + at + 8 * i, 8); out[i] = (real)v; }
        else { float v; memcpy(&v, buf + at + 4 * i, 4); out[i] = (real)v; }
    }
    free(buf);
    return out;
}

static int file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static void make_dir(const char *dir) {
    char mk[4200];
    snprintf(mk, sizeof mk, "mkdir -p '%s'", dir);
    if (system(mk) != 0) die("cannot create", dir);
}

/* Writes `data` of shape dims[0..ndim) ([B, ...] with B = dims[0]; the batch axis is left out when B = 1). */
static void write_npy_as(const char *dir, const char *name, const char *descr, const void *data, size_t elsize, int ndim,
                         const long *dims) {
    char path[4096], header[256], shape[128] = "";
    int first = dims[0] == 1 ? 1 : 0;
    long n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    for (int i = first; i < ndim; i++) {
        char part[32];
        snprintf(part, sizeof part, "%ld%s", dims[i], ndim - first == 1 ? "," : (i + 1 < ndim ? ", " : ""));
        strcat(shape, part);
    }
    int len = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape);
    int total = 10 + len + 1;
    int pad = (64 - total % 64) % 64;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) die("path too long in", dir);
    FILE *f = fopen(path, "wb");
    if (!f) die("cannot write", path);
    uint16_t hlen = (uint16_t)(len + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hlen & 0xff, f);
    fputc(hlen >> 8, f);
    fwrite(header, 1, (size_t)len, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    fwrite(data, elsize, (size_t)n, f);
    fclose(f);
}

static void write_npy(const char *dir, const char *name, const real *data, int ndim, const long *dims) {
    write_npy_as(dir, name, NPY_DESCR, data, sizeof(real), ndim, dims);
}

/* ---- the stages ---- */
static void layer_norm(real *out, const real *x, const weight *g, const weight *b, int C, double eps) {
#ifdef FAULT_LN_EPS_1E3
    eps = 1e-3;
#endif
    double mean = 0, var = 0;
    for (int i = 0; i < C; i++) mean += x[i];
    mean /= C;
    for (int i = 0; i < C; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= C;
    double inv = 1.0 / sqrt(var + eps);
    for (int i = 0; i < C; i++) out[i] = (real)((x[i] - mean) * inv * g[i] + b[i]);
}

/* Conv1D: y = x W + b with W stored [in, out] */
static void linear(real *y, const real *x, const weight *w, const weight *b, int in, int out, double *acc) {
    for (int j = 0; j < out; j++) acc[j] = b[j];
    for (int i = 0; i < in; i++) {
        double xi = x[i];
        const weight *row = w + (long)i * out;
        for (int j = 0; j < out; j++) acc[j] += xi * row[j];
    }
    for (int j = 0; j < out; j++) y[j] = (real)acc[j];
}

static real gelu(real x) {
#ifdef FAULT_EXACT_GELU
    return (real)(0.5 * x * (1.0 + erf(x / sqrt(2.0))));
#else
    double xd = x;
    return (real)(0.5 * xd * (1.0 + tanh(sqrt(2.0 / 3.14159265358979323846) * (xd + 0.044715 * xd * xd * xd))));
#endif
}

static double attention_scale(long D) {
#ifdef FAULT_SCALE_1_OVER_D
    return 1.0 / D;
#else
    return 1.0 / sqrt((double)D);
#endif
}

/* May query position t attend to key position s (key s holds a token: valid[s])? */
static int allowed(long t, long s, const int64_t *valid) {
#ifdef FAULT_NO_CAUSAL_MASK
    (void)t;
    return valid[s] == 1;
#else
    return s <= t && valid[s] == 1;
#endif
}

/* One query's scores over keys 0..S-1 (key s at k + s * k_stride), masked -inf; returns whether any is allowed. */
static void score_row(real *srow, const real *q, const real *k, long k_stride, long t, long S, long D, const int64_t *valid) {
    double scale = attention_scale(D);
    for (long s = 0; s < S; s++) {
        if (!allowed(t, s, valid)) { srow[s] = (real)-INFINITY; continue; }
        double dot = 0;
        for (long e = 0; e < D; e++) dot += (double)q[e] * k[s * k_stride + e];
        srow[s] = (real)(dot * scale);
    }
}

/* Softmax over the allowed keys (a query with none, a padding query, is left at 0: not model output). */
static void softmax_row(real *prow, const real *srow, long t, long S, const int64_t *valid, double *acc) {
    double mx = -INFINITY, sum = 0;
    int any = 0;
    for (long s = 0; s < S; s++)
        if (allowed(t, s, valid)) { if (srow[s] > mx) mx = srow[s]; any = 1; }
    for (long s = 0; s < S; s++) {
        double e = any && allowed(t, s, valid) ? exp(srow[s] - mx) : 0.0;
        acc[s] = e;
        sum += e;
    }
    for (long s = 0; s < S; s++) prow[s] = (real)(any ? acc[s] / sum : 0.0);
}

/* One head's output for one query: sum over keys of p[s] v[s] (value s at v + s * v_stride). */
static void weighted_sum(real *out, const real *prow, const real *v, long v_stride, long S, long D) {
    for (long e = 0; e < D; e++) {
        double o = 0;
        for (long s = 0; s < S; s++) o += (double)prow[s] * v[s * v_stride + e];
        out[e] = (real)o;
    }
}

static void embed(real *x, const Model *m, long id, long p, const char *name) {
    const Config *c = &m->cfg;
    if (id < 0 || id >= c->V || p < 0 || p >= c->P) die("token or position id out of range in case", name);
    for (long i = 0; i < c->C; i++) x[i] = (real)((double)m->wte[id * c->C + i] + m->wpe[p * c->C + i]);
}

/* logits[v] = the sum over i = 0 .. C - 1, in that order, of lnf[i] wte[v, i]: every v's sum advanced one i at a
 * time over a row of wte_t (acc: V sums), not one v's whole sum at a time (a chain of dependent additions). */
static void lm_head(real *logits, const Model *m, const real *lnf, double *acc) {
    const Config *c = &m->cfg;
    for (long v = 0; v < c->V; v++) acc[v] = 0;
    for (long i = 0; i < c->C; i++) {
        double x = lnf[i];
        const weight *row = m->wte_t + i * c->V;
        for (long v = 0; v < c->V; v++) acc[v] += x * row[v];
    }
    for (long v = 0; v < c->V; v++) logits[v] = (real)acc[v];
}

typedef struct {  /* every checkpoint of one case, [B, ...] */
    real *emb, *lnf, *logits;
    real **ln1, **qkv, **scores, **probs, **heads, **attn, **resid, **ln2, **fc, **act, **mlp, **out;
} Dumps;

static real *alloc_real(long n) { return xmalloc(sizeof(real) * (size_t)n); }

static Dumps alloc_dumps(const Config *c, long B, long T, long Vp) {
    long C = c->C, F = c->F, H = c->H, L = c->L;
    Dumps d;
    d.emb = alloc_real(B * T * C); d.lnf = alloc_real(B * T * C); d.logits = alloc_real(B * T * Vp);
    real ***lists[] = {&d.ln1, &d.qkv, &d.scores, &d.probs, &d.heads, &d.attn, &d.resid, &d.ln2, &d.fc, &d.act, &d.mlp, &d.out};
    long sizes[] = {C, 3 * C, H * T, H * T, C, C, C, C, F, F, C, C};  /* per position (scores: per query row) */
    for (int k = 0; k < 12; k++) {
        *lists[k] = xmalloc(sizeof(real *) * (size_t)L);
        for (long i = 0; i < L; i++) (*lists[k])[i] = alloc_real(B * T * sizes[k]);
    }
    return d;
}

static void free_dumps(Dumps *d, long L) {
    real **lists[] = {d->ln1, d->qkv, d->scores, d->probs, d->heads, d->attn, d->resid, d->ln2, d->fc, d->act, d->mlp, d->out};
    for (int k = 0; k < 12; k++) {
        for (long i = 0; i < L; i++) free(lists[k][i]);
        free(lists[k]);
    }
    free(d->emb); free(d->lnf); free(d->logits);
}

/* The checkpoints in this engine's layout (map.json): [B, T, ...], scores [B, H, T, S], logits padded to Vp. */
static void write_dumps(const Config *c, const Dumps *d, const char *dir, long B, long T, long Vp) {
    long C = c->C, F = c->F, H = c->H;
    make_dir(dir);
    long tc[] = {B, T, C}, tf[] = {B, T, F}, t3c[] = {B, T, 3 * C}, htt[] = {B, H, T, T}, tv[] = {B, T, Vp};
    write_npy(dir, "embeddings.npy", d->emb, 3, tc);
    write_npy(dir, "ln_f.npy", d->lnf, 3, tc);
    write_npy(dir, "logits.npy", d->logits, 3, tv);
    for (long l = 0; l < c->L; l++) {
        char f[64];
#define DUMP(field, suffix, dims, nd) snprintf(f, sizeof f, "h%ld_%s.npy", l, suffix); write_npy(dir, f, d->field[l], nd, dims)
        DUMP(ln1, "ln1", tc, 3); DUMP(qkv, "qkv", t3c, 3); DUMP(scores, "scores", htt, 4); DUMP(probs, "probs", htt, 4);
        DUMP(heads, "heads", tc, 3); DUMP(attn, "attn", tc, 3); DUMP(resid, "resid", tc, 3); DUMP(ln2, "ln2", tc, 3);
        DUMP(fc, "fc", tf, 3); DUMP(act, "act", tf, 3); DUMP(mlp, "mlp", tc, 3); DUMP(out, "out", tc, 3);
#undef DUMP
    }
}

typedef struct { int64_t *ids, *mask, *pos; int B, T; } Inputs;

static Inputs read_inputs(const char *refs, const char *name) {
    char path[4096];
    Inputs in;
    int b2, t2, b3, t3;
    snprintf(path, sizeof path, "%s/%s/input_ids.npy", refs, name);
    in.ids = read_npy_i64(path, &in.B, &in.T);
    snprintf(path, sizeof path, "%s/%s/attention_mask.npy", refs, name);
    in.mask = read_npy_i64(path, &b2, &t2);
    snprintf(path, sizeof path, "%s/%s/position_ids.npy", refs, name);
    in.pos = read_npy_i64(path, &b3, &t3);
    if (b2 != in.B || t2 != in.T || b3 != in.B || t3 != in.T) die("inputs of different shapes in case", name);
    return in;
}

static void free_inputs(Inputs *in) { free(in->ids); free(in->mask); free(in->pos); }

static long widest(const Config *c, long T) {  /* the widest row a sum is accumulated over: 3C, F, V or T */
    long most = 3 * c->C;
    if (c->F > most) most = c->F;
    if (c->V > most) most = c->V;
    if (T > most) most = T;
    return most;
}

/* ---- chained: the forward pass of every row from its token ids ---- */
static void run_case(const Model *m, const char *refs, const char *dumps_root, const char *name) {
    const Config *c = &m->cfg;
    char dir[4096];
    Inputs in = read_inputs(refs, name);
    long B = in.B, T = in.T, C = c->C, F = c->F, H = c->H, D = c->D, L = c->L, Vp = (c->V + 63) / 64 * 64;
    Dumps d = alloc_dumps(c, B, T, Vp);
    double *acc = xmalloc(sizeof(double) * (size_t)widest(c, T));
    real *x = alloc_real(T * C);
    for (long b = 0; b < B; b++) {
        const int64_t *valid = in.mask + b * T;
        for (long t = 0; t < T; t++) {
            long p = in.pos[b * T + t];
#ifdef FAULT_POSITIONS_OFF_BY_ONE
            p = p + 1 < c->P ? p + 1 : c->P - 1;
#endif
            embed(x + t * C, m, in.ids[b * T + t], p, name);
        }
        memcpy(d.emb + b * T * C, x, sizeof(real) * (size_t)(T * C));
        for (long l = 0; l < L; l++) {
            const Block *w = &m->blocks[l];
            real *ln1 = d.ln1[l] + b * T * C, *qkv = d.qkv[l] + b * T * 3 * C, *heads = d.heads[l] + b * T * C;
            real *scores = d.scores[l] + b * H * T * T, *probs = d.probs[l] + b * H * T * T;
            for (long t = 0; t < T; t++) {
                layer_norm(ln1 + t * C, x + t * C, w->ln1_g, w->ln1_b, (int)C, c->eps);
                linear(qkv + t * 3 * C, ln1 + t * C, w->attn_w, w->attn_b, (int)C, (int)(3 * C), acc);
            }
            for (long h = 0; h < H; h++)
                for (long t = 0; t < T; t++) {
                    real *srow = scores + (h * T + t) * T, *prow = probs + (h * T + t) * T;
                    score_row(srow, qkv + t * 3 * C + h * D, qkv + C + h * D, 3 * C, t, T, D, valid);
                    softmax_row(prow, srow, t, T, valid, acc);
                    weighted_sum(heads + t * C + h * D, prow, qkv + 2 * C + h * D, 3 * C, T, D);
                }
            real *attn = d.attn[l] + b * T * C, *resid = d.resid[l] + b * T * C, *ln2 = d.ln2[l] + b * T * C;
            real *fc = d.fc[l] + b * T * F, *act = d.act[l] + b * T * F, *mlp = d.mlp[l] + b * T * C, *out = d.out[l] + b * T * C;
            for (long t = 0; t < T; t++) {
                linear(attn + t * C, heads + t * C, w->proj_w, w->proj_b, (int)C, (int)C, acc);
                for (long i = 0; i < C; i++) resid[t * C + i] = (real)((double)x[t * C + i] + attn[t * C + i]);
                layer_norm(ln2 + t * C, resid + t * C, w->ln2_g, w->ln2_b, (int)C, c->eps);
                linear(fc + t * F, ln2 + t * C, w->fc_w, w->fc_b, (int)C, (int)F, acc);
                for (long i = 0; i < F; i++) act[t * F + i] = gelu(fc[t * F + i]);
                linear(mlp + t * C, act + t * F, w->mproj_w, w->mproj_b, (int)F, (int)C, acc);
                for (long i = 0; i < C; i++) out[t * C + i] = (real)((double)resid[t * C + i] + mlp[t * C + i]);
            }
            memcpy(x, out, sizeof(real) * (size_t)(T * C));
        }
        for (long t = 0; t < T; t++) {
            real *lnf = d.lnf + (b * T + t) * C;
            layer_norm(lnf, x + t * C, m->lnf_g, m->lnf_b, (int)C, c->eps);
            lm_head(d.logits + (b * T + t) * Vp, m, lnf, acc);
        }
    }
    snprintf(dir, sizeof dir, "%s/%s", dumps_root, name);
    write_dumps(c, &d, dir, B, T, Vp);
    free_dumps(&d, L);
    free_inputs(&in);
    free(acc); free(x);
}

/* ---- isolated: each stage on the reference's own inputs, written as the chained pass writes it ---- */
static real *ref_array(const char *refs, const char *name, const char *checkpoint, long n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s.npy", refs, name, checkpoint);
    return read_npy_real(path, n);
}

static void run_stages(const Model *m, const char *refs, const char *dumps_root, const char *name) {
    const Config *c = &m->cfg;
    char dir[4096], cp[64];
    Inputs in = read_inputs(refs, name);
    long B = in.B, T = in.T, C = c->C, F = c->F, H = c->H, D = c->D, L = c->L, Vp = (c->V + 63) / 64 * 64;
    Dumps d = alloc_dumps(c, B, T, Vp);
    double *acc = xmalloc(sizeof(double) * (size_t)widest(c, T));
    for (long b = 0; b < B; b++)
        for (long t = 0; t < T; t++) {
            long p = in.pos[b * T + t];
#ifdef FAULT_POSITIONS_OFF_BY_ONE
            p = p + 1 < c->P ? p + 1 : c->P - 1;
#endif
            embed(d.emb + (b * T + t) * C, m, in.ids[b * T + t], p, name);
        }
    for (long l = 0; l < L; l++) {
        const Block *w = &m->blocks[l];
        real *x;  /* the block's input: the reference's embeddings or the previous block's output */
        if (l == 0) x = ref_array(refs, name, "embeddings", B * T * C);
        else { snprintf(cp, sizeof cp, "h%ld.out", l - 1); x = ref_array(refs, name, cp, B * T * C); }
#define REF(var, kind, n) snprintf(cp, sizeof cp, "h%ld." kind, l); real *var = ref_array(refs, name, cp, n)
        REF(ln1, "ln_1", B * T * C); REF(q, "q", B * T * C); REF(k, "k", B * T * C); REF(v, "v", B * T * C);
        REF(scores, "attn_scores", B * H * T * T); REF(probs, "attn_probs", B * H * T * T); REF(heads, "attn_heads", B * T * C);
        REF(attn, "attn_out", B * T * C); REF(resid, "resid_mid", B * T * C); REF(ln2, "ln_2", B * T * C);
        REF(fc, "mlp_fc", B * T * F); REF(act, "mlp_act", B * T * F); REF(mlp, "mlp_out", B * T * C);
#undef REF
        for (long b = 0; b < B; b++) {
            const int64_t *valid = in.mask + b * T;
            for (long t = 0; t < T; t++) {
                long r = b * T + t;
                layer_norm(d.ln1[l] + r * C, x + r * C, w->ln1_g, w->ln1_b, (int)C, c->eps);
                linear(d.qkv[l] + r * 3 * C, ln1 + r * C, w->attn_w, w->attn_b, (int)C, (int)(3 * C), acc);
                linear(d.attn[l] + r * C, heads + r * C, w->proj_w, w->proj_b, (int)C, (int)C, acc);
                for (long i = 0; i < C; i++) d.resid[l][r * C + i] = (real)((double)x[r * C + i] + attn[r * C + i]);
                layer_norm(d.ln2[l] + r * C, resid + r * C, w->ln2_g, w->ln2_b, (int)C, c->eps);
                linear(d.fc[l] + r * F, ln2 + r * C, w->fc_w, w->fc_b, (int)C, (int)F, acc);
                for (long i = 0; i < F; i++) d.act[l][r * F + i] = gelu(fc[r * F + i]);
                linear(d.mlp[l] + r * C, act + r * F, w->mproj_w, w->mproj_b, (int)F, (int)C, acc);
                for (long i = 0; i < C; i++) d.out[l][r * C + i] = (real)((double)resid[r * C + i] + mlp[r * C + i]);
            }
            for (long h = 0; h < H; h++)  /* q, k, v [B, H, T, D], scores and probabilities [B, H, T, T] */
                for (long t = 0; t < T; t++) {
                    long head = (b * H + h) * T, row = (head + t) * T;
                    score_row(d.scores[l] + b * H * T * T + (h * T + t) * T, q + (head + t) * D, k + head * D, D, t, T, D, valid);
                    softmax_row(d.probs[l] + b * H * T * T + (h * T + t) * T, scores + row, t, T, valid, acc);
                    weighted_sum(d.heads[l] + (b * T + t) * C + h * D, probs + row, v + head * D, D, T, D);
                }
        }
        free(x); free(ln1); free(q); free(k); free(v); free(scores); free(probs); free(heads); free(attn); free(resid);
        free(ln2); free(fc); free(act); free(mlp);
    }
    snprintf(cp, sizeof cp, "h%ld.out", L - 1);
    real *last = ref_array(refs, name, cp, B * T * C), *lnf = ref_array(refs, name, "ln_f", B * T * C);
    for (long r = 0; r < B * T; r++) {
        layer_norm(d.lnf + r * C, last + r * C, m->lnf_g, m->lnf_b, (int)C, c->eps);
        lm_head(d.logits + r * Vp, m, lnf + r * C, acc);
    }
    snprintf(dir, sizeof dir, "%s/%s/stage", dumps_root, name);
    write_dumps(c, &d, dir, B, T, Vp);
    free(last); free(lnf); free(acc);
    free_dumps(&d, L);
    free_inputs(&in);
}

/* ---- the KV cache: one per row, slot j holds the j-th position fed since the cache was cleared ---- */
typedef struct { long cap, n; real *k, *v; int64_t *valid; } Cache;  /* k, v: [L][cap][C] */

static Cache cache_new(const Config *c) {
    Cache kv;
    kv.cap = 3L * c->P + 2;  /* room for a request left in the cache by FAULT_CACHE_NOT_CLEARED */
    kv.n = 0;
    kv.k = alloc_real((long)c->L * kv.cap * c->C);
    kv.v = alloc_real((long)c->L * kv.cap * c->C);
    kv.valid = xmalloc(sizeof(int64_t) * (size_t)kv.cap);
    return kv;
}

static void cache_clear(Cache *kv) {
#ifdef FAULT_CACHE_NOT_CLEARED
    (void)kv;  /* the bug: the previous request's keys and values stay, and the next request is appended to them */
#else
    kv->n = 0;
#endif
}

static void cache_free(Cache *kv) { free(kv->k); free(kv->v); free(kv->valid); }

typedef struct {  /* one row's checkpoints of one step: every array [1 position] (scores: [H, n keys]) */
    real *emb, *lnf, *logits, *ln1, *qkv, *scores, *probs, *heads, *attn, *resid, *ln2, *fc, *act, *mlp, *out;
} Step;

/* Feed one position (token `id` at position `p`; `valid`: it is a token, not padding) through the model with
 * the cache, appending its keys and values. `decoding`: a step after the prefill. Fills `o` (every checkpoint,
 * per layer l at l * width) when given, and `logits` when given. Scratch: acc (widest) and x, y (C). */
static void step(const Model *m, Cache *kv, long id, long p, int64_t valid, int decoding, Step *o, real *logits,
                 double *acc, const char *name) {
    const Config *c = &m->cfg;
    long C = c->C, F = c->F, H = c->H, D = c->D;
    long slot = kv->n;
#ifdef FAULT_DECODE_POSITION_OFF_BY_ONE
    if (decoding) p = p + 1 < c->P ? p + 1 : c->P - 1;
#endif
#ifdef FAULT_CACHE_ONE_SLOT_LATE
    if (decoding) slot = kv->n + 1;  /* the bug: a decoding step writes its key and value one slot past its own */
#endif
    (void)decoding;
    if (slot >= kv->cap) die("the KV cache is full in case", name);
    long n = kv->n + 1;  /* keys 0 .. n-1; this position's query is key n - 1 */
    real *x = alloc_real(C), *buf = alloc_real(5 * C + 2 * F + 2 * H * n);
    real *ln1 = buf, *qkv = ln1 + C, *heads = qkv + 3 * C, *fc = heads + C, *act = fc + F, *sc = act + F, *pr = sc + H * n;
    real *attn = alloc_real(C), *resid = alloc_real(C), *ln2 = alloc_real(C), *mlp = alloc_real(C);
    embed(x, m, id, p, name);
    if (o) memcpy(o->emb, x, sizeof(real) * (size_t)C);
    kv->valid[slot] = valid;
    for (long l = 0; l < c->L; l++) {
        const Block *w = &m->blocks[l];
        real *K = kv->k + l * kv->cap * C, *V = kv->v + l * kv->cap * C;
        layer_norm(ln1, x, w->ln1_g, w->ln1_b, (int)C, c->eps);
        linear(qkv, ln1, w->attn_w, w->attn_b, (int)C, (int)(3 * C), acc);
        memcpy(K + slot * C, qkv + C, sizeof(real) * (size_t)C);
        memcpy(V + slot * C, qkv + 2 * C, sizeof(real) * (size_t)C);
        for (long h = 0; h < H; h++) {
            score_row(sc + h * n, qkv + h * D, K + h * D, C, n - 1, n, D, kv->valid);
            softmax_row(pr + h * n, sc + h * n, n - 1, n, kv->valid, acc);
            weighted_sum(heads + h * D, pr + h * n, V + h * D, C, n, D);
        }
        linear(attn, heads, w->proj_w, w->proj_b, (int)C, (int)C, acc);
        for (long i = 0; i < C; i++) resid[i] = (real)((double)x[i] + attn[i]);
        layer_norm(ln2, resid, w->ln2_g, w->ln2_b, (int)C, c->eps);
        linear(fc, ln2, w->fc_w, w->fc_b, (int)C, (int)F, acc);
        for (long i = 0; i < F; i++) act[i] = gelu(fc[i]);
        linear(mlp, act, w->mproj_w, w->mproj_b, (int)F, (int)C, acc);
        for (long i = 0; i < C; i++) x[i] = (real)((double)resid[i] + mlp[i]);
        if (o) {
#define KEEP(field, src, width) memcpy(o->field + l * (width), src, sizeof(real) * (size_t)(width))
            KEEP(ln1, ln1, C); KEEP(qkv, qkv, 3 * C); KEEP(scores, sc, H * n); KEEP(probs, pr, H * n); KEEP(heads, heads, C);
            KEEP(attn, attn, C); KEEP(resid, resid, C); KEEP(ln2, ln2, C); KEEP(fc, fc, F); KEEP(act, act, F);
            KEEP(mlp, mlp, C); KEEP(out, x, C);
#undef KEEP
        }
    }
    kv->n = n;
    if (o || logits) {
        real *lnf = alloc_real(C);
        layer_norm(lnf, x, m->lnf_g, m->lnf_b, (int)C, c->eps);
        if (o) memcpy(o->lnf, lnf, sizeof(real) * (size_t)C);
        if (logits) lm_head(logits, m, lnf, acc);
        if (o && logits) memcpy(o->logits, logits, sizeof(real) * (size_t)c->V);
        free(lnf);
    }
    free(x); free(buf); free(attn); free(resid); free(ln2); free(mlp);
}

static int64_t read_scalar(const char *refs, const char *name, const char *file) {
    char path[4096];
    int r, k;
    snprintf(path, sizeof path, "%s/%s/%s.npy", refs, name, file);
    int64_t *a = read_npy_i64(path, &r, &k);
    int64_t v = a[0];
    free(a);
    return v;
}

/* ---- cached: prefill, then one position at a time, every step's checkpoints with the cache's keys ---- */
static void run_cached(const Model *m, const char *refs, const char *dumps_root, const char *name) {
    const Config *c = &m->cfg;
    char path[4096], dir[4096];
    Inputs in = read_inputs(refs, name);
    long B = in.B, T = in.T, C = c->C, F = c->F, H = c->H, L = c->L, Vp = (c->V + 63) / 64 * 64;
    long split = (long)read_scalar(refs, name, "decode_split");
    int ub, ut;
    snprintf(path, sizeof path, "%s/%s/unrelated_ids.npy", refs, name);
    int64_t *unrelated = read_npy_i64(path, &ub, &ut);
    if (ub != B || ut != T || split < 1 || split > T) die("decode_split or unrelated_ids do not fit case", name);
    double *acc = xmalloc(sizeof(double) * (size_t)widest(c, 3L * c->P + 2));
    Cache *kv = xmalloc(sizeof(Cache) * (size_t)B);
    for (long b = 0; b < B; b++) {
        kv[b] = cache_new(c);
        for (long t = 0; t < T; t++)  /* another request first: nothing of it may reach the case */
            step(m, &kv[b], unrelated[b * T + t], in.pos[b * T + t], in.mask[b * T + t], 0, NULL, NULL, acc, name);
        cache_clear(&kv[b]);
        for (long t = 0; t < split; t++)
            step(m, &kv[b], in.ids[b * T + t], in.pos[b * T + t], in.mask[b * T + t], 0, NULL, NULL, acc, name);
    }
    long keys = kv[0].n + T;  /* the most keys a step can have */
    Step o;
    real **fields[] = {&o.emb, &o.lnf, &o.logits, &o.ln1, &o.qkv, &o.scores, &o.probs, &o.heads, &o.attn, &o.resid,
                       &o.ln2, &o.fc, &o.act, &o.mlp, &o.out};
    long widths[] = {C, C, Vp, L * C, L * 3 * C, L * H * keys, L * H * keys, L * C, L * C, L * C, L * C, L * F, L * F,
                     L * C, L * C};
    for (int f = 0; f < 15; f++) *fields[f] = alloc_real(B * widths[f]);
    real *kc = alloc_real(B * L * keys * C), *vc = alloc_real(B * L * keys * C), *logits = alloc_real(Vp);
    for (long t = split; t < T; t++) {
        long n = 0;
        for (long b = 0; b < B; b++) {
            Step row;
            real **rf[] = {&row.emb, &row.lnf, &row.logits, &row.ln1, &row.qkv, &row.scores, &row.probs, &row.heads,
                           &row.attn, &row.resid, &row.ln2, &row.fc, &row.act, &row.mlp, &row.out};
            n = kv[b].n + 1;
            long wn[] = {C, C, Vp, L * C, L * 3 * C, L * H * n, L * H * n, L * C, L * C, L * C, L * C, L * F, L * F, L * C, L * C};
            for (int f = 0; f < 15; f++) *rf[f] = *fields[f] + b * wn[f];
            step(m, &kv[b], in.ids[b * T + t], in.pos[b * T + t], in.mask[b * T + t], 1, &row, logits, acc, name);
            for (long l = 0; l < L; l++)
                for (long s = 0; s < n; s++) {
                    memcpy(kc + ((b * L + l) * n + s) * C, kv[b].k + (l * kv[b].cap + s) * C, sizeof(real) * (size_t)C);
                    memcpy(vc + ((b * L + l) * n + s) * C, kv[b].v + (l * kv[b].cap + s) * C, sizeof(real) * (size_t)C);
                }
        }
        /* files: every row's step [B, 1, ...]; per layer its slice of each row's [L, ...] block */
        snprintf(dir, sizeof dir, "%s/%s/decode/t%ld", dumps_root, name, t);
        make_dir(dir);
        long tc[] = {B, 1, C}, tf[] = {B, 1, F}, t3c[] = {B, 1, 3 * C}, hts[] = {B, H, 1, n}, tv[] = {B, 1, Vp}, sc[] = {B, n, C};
        write_npy(dir, "embeddings.npy", o.emb, 3, tc);
        write_npy(dir, "ln_f.npy", o.lnf, 3, tc);
        write_npy(dir, "logits.npy", o.logits, 3, tv);
        real *tmp = alloc_real(B * (H * n > F ? (H * n > 3 * C ? H * n : 3 * C) : (F > 3 * C ? F : 3 * C)) + B * n * C);
        for (long l = 0; l < L; l++) {
            char f[64];
#define LAYER(field, width, suffix, dims, nd) \
    for (long b = 0; b < B; b++) memcpy(tmp + b * (width), o.field + b * L * (width) + l * (width), sizeof(real) * (size_t)(width)); \
    snprintf(f, sizeof f, "h%ld_%s.npy", l, suffix); write_npy(dir, f, tmp, nd, dims)
            LAYER(ln1, C, "ln1", tc, 3); LAYER(qkv, 3 * C, "qkv", t3c, 3); LAYER(scores, H * n, "scores", hts, 4);
            LAYER(probs, H * n, "probs", hts, 4); LAYER(heads, C, "heads", tc, 3); LAYER(attn, C, "attn", tc, 3);
            LAYER(resid, C, "resid", tc, 3); LAYER(ln2, C, "ln2", tc, 3); LAYER(fc, F, "fc", tf, 3); LAYER(act, F, "act", tf, 3);
            LAYER(mlp, C, "mlp", tc, 3); LAYER(out, C, "out", tc, 3);
#undef LAYER
            for (long b = 0; b < B; b++) memcpy(tmp + b * n * C, kc + (b * L + l) * n * C, sizeof(real) * (size_t)(n * C));
            snprintf(f, sizeof f, "h%ld_kcache.npy", l); write_npy(dir, f, tmp, 3, sc);
            for (long b = 0; b < B; b++) memcpy(tmp + b * n * C, vc + (b * L + l) * n * C, sizeof(real) * (size_t)(n * C));
            snprintf(f, sizeof f, "h%ld_vcache.npy", l); write_npy(dir, f, tmp, 3, sc);
        }
        free(tmp);
    }
    for (int f = 0; f < 15; f++) free(*fields[f]);
    for (long b = 0; b < B; b++) cache_free(&kv[b]);
    free(kv); free(kc); free(vc); free(logits); free(acc); free(unrelated);
    free_inputs(&in);
}

/* ---- generation: greedy, and the sampler's processed scores along a given path ---- */
static long argmax(const real *logits, long V) {
    long best = 0;
    for (long v = 1; v < V; v++) if (logits[v] > logits[best]) best = v;  /* the first of equals, as torch */
    return best;
}

static int descending(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

static const float *sort_scores;
static int ascending_index(const void *a, const void *b) {
    float x = sort_scores[*(const long *)a], y = sort_scores[*(const long *)b];
    return (x > y) - (x < y);
}

/* transformers' order: the last logits as float32, / temperature, top-k (keep those >= the k-th largest), top-p
 * (sorted ascending, drop those whose cumulative probability is <= 1 - top_p, the largest always kept). */
static void process_scores(float *s, const real *logits, long V, double temperature, long top_k, double top_p) {
    for (long v = 0; v < V; v++) s[v] = (float)logits[v] / (float)temperature;
#ifdef FAULT_TOP_K_PLUS_ONE
    top_k = top_k > 0 ? top_k + 1 : 0;  /* the bug: one token too many survives top-k */
#endif
    if (top_k > 0 && top_k < V) {
        float *sorted = xmalloc(sizeof(float) * (size_t)V);
        memcpy(sorted, s, sizeof(float) * (size_t)V);
        qsort(sorted, (size_t)V, sizeof(float), descending);
        float kth = sorted[top_k - 1];
        for (long v = 0; v < V; v++) if (s[v] < kth) s[v] = -INFINITY;
        free(sorted);
    }
    if (top_p < 1.0) {
        long *order = xmalloc(sizeof(long) * (size_t)V);
        for (long v = 0; v < V; v++) order[v] = v;
        sort_scores = s;
        qsort(order, (size_t)V, sizeof(long), ascending_index);
        double mx = s[order[V - 1]], sum = 0, cum = 0;
        for (long i = 0; i < V; i++) sum += exp((double)s[order[i]] - mx);
        int *drop = xmalloc(sizeof(int) * (size_t)V);
        for (long i = 0; i < V; i++) {
            cum += exp((double)s[order[i]] - mx) / sum;
            drop[i] = cum <= 1.0 - top_p && i < V - 1;
        }
        for (long i = 0; i < V; i++) if (drop[i]) s[order[i]] = -INFINITY;
        free(order); free(drop);
    }
}

static void run_generation(const Model *m, const char *refs, const char *dumps_root, const char *name, int sampled) {
    const Config *c = &m->cfg;
    char path[4096], dir[4096], f[64];
    Inputs in = read_inputs(refs, name);
    long B = in.B, T = in.T, V = c->V, Vp = (V + 63) / 64 * 64;
    long n;
    int64_t *path_ids = NULL;
    double settings[3] = {1.0, 0, 1.0};
    if (sampled) {
        int pb, pt;
        snprintf(path, sizeof path, "%s/%s/sample_ids.npy", refs, name);
        path_ids = read_npy_i64(path, &pb, &pt);
        if (pb != B || pt <= T) die("sample_ids does not continue case", name);
        n = pt - T;
        snprintf(path, sizeof path, "%s/%s/sample_settings.npy", refs, name);
        read_npy_f64(path, settings, 3);
    } else {
        n = (long)read_scalar(refs, name, "generate_tokens");
    }
    if (n < 1 || T + n > c->P) die("new tokens do not fit the context in case", name);
    double *acc = xmalloc(sizeof(double) * (size_t)widest(c, 3L * c->P + 2));
    int64_t *ids = xmalloc(sizeof(int64_t) * (size_t)(B * (T + n)));
    float *scores = xmalloc(sizeof(float) * (size_t)(n * B * V));
    real *logits = alloc_real(Vp);
    for (long b = 0; b < B; b++) {
        Cache kv = cache_new(c);
        for (long t = 0; t < T; t++) {
            ids[b * (T + n) + t] = in.ids[b * T + t];
            step(m, &kv, in.ids[b * T + t], in.pos[b * T + t], in.mask[b * T + t], 0, NULL, t == T - 1 ? logits : NULL, acc, name);
        }
        long next_pos = in.pos[b * T + T - 1] + 1;  /* left-padded: the last column holds the row's last token */
        for (long k = 0; k < n; k++) {
            long token;
            if (sampled) {
                process_scores(scores + (k * B + b) * V, logits, V, settings[0], (long)settings[1], settings[2]);
                token = path_ids[b * (T + n) + T + k];
            } else {
                token = argmax(logits, V);
            }
            ids[b * (T + n) + T + k] = token;
            if (k + 1 < n) step(m, &kv, token, next_pos + k, 1, 1, NULL, logits, acc, name);
        }
        cache_free(&kv);
    }
    snprintf(dir, sizeof dir, "%s/%s", dumps_root, name);
    make_dir(dir);
    if (sampled) {
        long bv[] = {B, V};
        for (long k = 0; k < n; k++) {
            snprintf(f, sizeof f, "sample.scores@step=%ld.npy", k);
            write_npy_as(dir, f, "<f4", scores + k * B * V, sizeof(float), 2, bv);
        }
    } else {
        long dims[] = {B, T + n};
        write_npy_as(dir, "generated_ids.npy", "<i8", ids, sizeof(int64_t), 2, dims);
    }
    free(acc); free(ids); free(scores); free(logits); free(path_ids);
    free_inputs(&in);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL_DIR REFERENCES_DIR DUMPS_DIR\n", argv[0]);
        return 2;
    }
    Model m = load_model(argv[1]);
    char path[4096], line[256];
    snprintf(path, sizeof path, "%s/cases.txt", argv[2]);
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open", path);
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        run_case(&m, argv[2], argv[3], line);
        run_stages(&m, argv[2], argv[3], line);
        snprintf(path, sizeof path, "%s/%s/decode_split.npy", argv[2], line);
        if (file_exists(path)) run_cached(&m, argv[2], argv[3], line);
        snprintf(path, sizeof path, "%s/%s/generate_tokens.npy", argv[2], line);
        if (file_exists(path)) run_generation(&m, argv[2], argv[3], line, 0);
        snprintf(path, sizeof path, "%s/%s/sample_settings.npy", argv[2], line);
        if (file_exists(path)) run_generation(&m, argv[2], argv[3], line, 1);
        n++;
    }
    fclose(f);
    fprintf(stderr, "gpt2: wrote the checkpoints of %d case(s), in every mode, to %s\n", n, argv[3]);
    return n ? 0 : 1;
}
