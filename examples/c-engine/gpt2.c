/* A GPT-2 forward pass in C99 with no dependency but the C standard library: the kind of from-scratch
 * engine gpt2core verifies. It reads a Hugging Face GPT-2 directory (config.json, model.safetensors) and a
 * gpt2core reference set (cases.txt, <case>/input_ids.npy, attention_mask.npy, position_ids.npy), runs every
 * case, and writes its checkpoints in ITS natural layout (map.json declares it):
 *   fused QKV [T, 3C] with heads last, attention scores and probabilities [H, T, T] with masked scores -inf,
 *   logits padded to a multiple of 64, and no batch axis for a case of one row.
 *
 *   gpt2 MODEL_DIR REFERENCES_DIR DUMPS_DIR
 *
 * Build: `make` (float32, ./gpt2), `make gpt2_f64` (float64) or `make gpt2_f16` (float16 storage: weights and
 * every checkpoint rounded to float16, sums in double; map-f16.json). Faults for the tests, one at a time:
 * -DFAULT_SCALE_1_OVER_D, -DFAULT_NO_CAUSAL_MASK, -DFAULT_EXACT_GELU, -DFAULT_LN_EPS_1E3,
 * -DFAULT_POSITIONS_OFF_BY_ONE, -DFAULT_KV_SWAPPED.
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
typedef struct { Config cfg; weight *wte, *wpe, *lnf_g, *lnf_b; Block *blocks; } Model;

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
static int64_t *read_npy_i64(const char *path, int *rows, int *cols) {
    long size;
    char *buf = read_file(path, &size);
    if (size < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) die("not a .npy file", path);
    int major = buf[6];
    uint32_t hlen = 0;
    int off = major == 1 ? 10 : 12;
    if (major == 1) hlen = (uint8_t)buf[8] | ((uint32_t)(uint8_t)buf[9] << 8);
    else memcpy(&hlen, buf + 8, 4);
    char *header = buf + off;
    if (!strstr(header, "'<i8'")) die("expected little-endian int64 in", path);
    if (strstr(header, "'fortran_order': True")) die("expected C order in", path);
    const char *shape = strchr(strstr(header, "'shape'"), '(') + 1;
    char *end;
    *rows = (int)strtol(shape, &end, 10);
    *cols = (int)strtol(strchr(end, ',') + 1, NULL, 10);
    long n = (long)*rows * *cols;
    if (off + (long)hlen + 8 * n > size) die("truncated .npy file", path);
    int64_t *out = xmalloc(sizeof(int64_t) * (size_t)n);
    memcpy(out, buf + off + hlen, sizeof(int64_t) * (size_t)n);
    free(buf);
    return out;
}

/* Writes `data` of shape dims[0..ndim) ([B, ...] with B = dims[0]; the batch axis is left out when B = 1). */
static void write_npy(const char *dir, const char *name, const real *data, int ndim, const long *dims) {
    char path[4096], header[256], shape[128] = "";
    int first = dims[0] == 1 ? 1 : 0;
    long n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    for (int i = first; i < ndim; i++) {
        char part[32];
        snprintf(part, sizeof part, "%ld%s", dims[i], ndim - first == 1 ? "," : (i + 1 < ndim ? ", " : ""));
        strcat(shape, part);
    }
    int len = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", NPY_DESCR, shape);
    int total = 10 + len + 1;
    int pad = (64 - total % 64) % 64;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) die("cannot write", path);
    uint16_t hlen = (uint16_t)(len + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hlen & 0xff, f);
    fputc(hlen >> 8, f);
    fwrite(header, 1, (size_t)len, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    fwrite(data, sizeof(real), (size_t)n, f);
    fclose(f);
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

typedef struct {  /* every checkpoint of one case, [B, ...] */
    real *emb, *lnf, *logits;
    real **ln1, **qkv, **scores, **probs, **heads, **attn, **resid, **ln2, **fc, **act, **mlp, **out;
} Dumps;

static real *alloc_real(long n) { return xmalloc(sizeof(real) * (size_t)n); }

static void run_case(const Model *m, const char *refs, const char *dumps_root, const char *name) {
    const Config *c = &m->cfg;
    char path[4096], dir[4096];
    int B, T, b2, t2, b3, t3;
    snprintf(path, sizeof path, "%s/%s/input_ids.npy", refs, name);
    int64_t *ids = read_npy_i64(path, &B, &T);
    snprintf(path, sizeof path, "%s/%s/attention_mask.npy", refs, name);
    int64_t *mask = read_npy_i64(path, &b2, &t2);
    snprintf(path, sizeof path, "%s/%s/position_ids.npy", refs, name);
    int64_t *pos = read_npy_i64(path, &b3, &t3);
    if (b2 != B || t2 != T || b3 != B || t3 != T) die("inputs of different shapes in case", name);
    long C = c->C, F = c->F, H = c->H, D = c->D, L = c->L, Vp = (c->V + 63) / 64 * 64;
    Dumps d;
    d.emb = alloc_real(B * T * C); d.lnf = alloc_real(B * T * C); d.logits = alloc_real(B * T * Vp);
    real ***lists[] = {&d.ln1, &d.qkv, &d.scores, &d.probs, &d.heads, &d.attn, &d.resid, &d.ln2, &d.fc, &d.act, &d.mlp, &d.out};
    long sizes[] = {C, 3 * C, H * T, H * T, C, C, C, C, F, F, C, C};  /* per position (scores: per query row) */
    for (int k = 0; k < 12; k++) {
        *lists[k] = xmalloc(sizeof(real *) * (size_t)L);
        for (long i = 0; i < L; i++) (*lists[k])[i] = alloc_real(B * T * sizes[k]);
    }
    long most = 3 * C;  /* the widest row a sum is accumulated over: 3C, F, V or T */
    if (F > most) most = F;
    if (c->V > most) most = c->V;
    if (T > most) most = T;
    double *acc = xmalloc(sizeof(double) * (size_t)most);
    real *x = alloc_real(T * C);
    for (long b = 0; b < B; b++) {
        for (long t = 0; t < T; t++) {
            long id = ids[b * T + t], p = pos[b * T + t];
#ifdef FAULT_POSITIONS_OFF_BY_ONE
            p = p + 1 < c->P ? p + 1 : c->P - 1;
#endif
            if (id < 0 || id >= c->V || p < 0 || p >= c->P) die("token or position id out of range in case", name);
            for (long i = 0; i < C; i++) x[t * C + i] = (real)((double)m->wte[id * C + i] + m->wpe[p * C + i]);
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
#ifdef FAULT_SCALE_1_OVER_D
            double scale = 1.0 / D;
#else
            double scale = 1.0 / sqrt((double)D);
#endif
            for (long h = 0; h < H; h++)
                for (long t = 0; t < T; t++) {
                    real *srow = scores + (h * T + t) * T, *prow = probs + (h * T + t) * T;
                    double mx = -INFINITY, sum = 0;
                    int any = 0;
                    for (long s = 0; s < T; s++) {
#ifdef FAULT_NO_CAUSAL_MASK
                        int allowed = mask[b * T + s] == 1;
#else
                        int allowed = s <= t && mask[b * T + s] == 1;
#endif
                        if (!allowed) { srow[s] = (real)-INFINITY; continue; }
                        double dot = 0;
                        for (long e = 0; e < D; e++) dot += (double)qkv[t * 3 * C + h * D + e] * qkv[s * 3 * C + C + h * D + e];
                        srow[s] = (real)(dot * scale);
                        if (srow[s] > mx) mx = srow[s];
                        any = 1;
                    }
                    for (long s = 0; s < T; s++) {  /* a padding query has no allowed key: its row is left at 0 (not model output) */
                        double e = !any || isinf((double)srow[s]) ? 0.0 : exp(srow[s] - mx);
                        acc[s] = e;
                        sum += e;
                    }
                    for (long s = 0; s < T; s++) prow[s] = (real)(any ? acc[s] / sum : 0.0);
                    for (long e = 0; e < D; e++) {
                        double o = 0;
                        for (long s = 0; s < T; s++) o += (double)prow[s] * qkv[s * 3 * C + 2 * C + h * D + e];
                        heads[t * C + h * D + e] = (real)o;
                    }
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
            real *lnf = d.lnf + (b * T + t) * C, *logits = d.logits + (b * T + t) * Vp;
            layer_norm(lnf, x + t * C, m->lnf_g, m->lnf_b, (int)C, c->eps);
            for (long i = 0; i < C; i++) acc[i] = lnf[i];  /* converted once, not once per token of the vocabulary */
            for (long v = 0; v < c->V; v++) {
                double o = 0;
                for (long i = 0; i < C; i++) o += acc[i] * m->wte[v * C + i];
                logits[v] = (real)o;
            }
        }
    }
    snprintf(dir, sizeof dir, "%s/%s", dumps_root, name);
    char mk[4200];
    snprintf(mk, sizeof mk, "mkdir -p '%s'", dir);
    if (system(mk) != 0) die("cannot create", dir);
    long tc[] = {B, T, C}, tf[] = {B, T, F}, t3c[] = {B, T, 3 * C}, htt[] = {B, H, T, T}, tv[] = {B, T, Vp};
    write_npy(dir, "embeddings.npy", d.emb, 3, tc);
    write_npy(dir, "ln_f.npy", d.lnf, 3, tc);
    write_npy(dir, "logits.npy", d.logits, 3, tv);
    for (long l = 0; l < L; l++) {
        char f[64];
#define DUMP(field, suffix, dims, nd) snprintf(f, sizeof f, "h%ld_%s.npy", l, suffix); write_npy(dir, f, d.field[l], nd, dims)
        DUMP(ln1, "ln1", tc, 3); DUMP(qkv, "qkv", t3c, 3); DUMP(scores, "scores", htt, 4); DUMP(probs, "probs", htt, 4);
        DUMP(heads, "heads", tc, 3); DUMP(attn, "attn", tc, 3); DUMP(resid, "resid", tc, 3); DUMP(ln2, "ln2", tc, 3);
        DUMP(fc, "fc", tf, 3); DUMP(act, "act", tf, 3); DUMP(mlp, "mlp", tc, 3); DUMP(out, "out", tc, 3);
#undef DUMP
    }
    free(ids); free(mask); free(pos); free(acc); free(x);
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
        n++;
    }
    fclose(f);
    fprintf(stderr, "gpt2: wrote the checkpoints of %d case(s) to %s\n", n, argv[3]);
    return n ? 0 : 1;
}
