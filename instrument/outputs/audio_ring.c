/* The numpy synth's audio callback in C: PortAudio plays from a ring buffer that a Python thread fills
 * ahead of time, so the audio thread never waits for Python's GIL (docs/audio.md).
 *
 * One writer (the synth's render thread) and one reader (PortAudio's callback), lock-free: the writer
 * publishes frames with a release store of `written`, the reader consumes them and publishes `read`.
 * Each callback also leaves a record of when its first frame sounds (CLOCK_MONOTONIC at entry plus
 * PortAudio's outputBufferDacTime - currentTime), for the writer to map the clock to frames.
 * PortAudio's few declarations are written out here (its ABI is stable since v19), so no headers are
 * needed: only libportaudio.so.2, which sounddevice loads anyway. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int PaError;
typedef double PaTime;
typedef struct { int device; int channelCount; unsigned long sampleFormat; PaTime suggestedLatency; void *hostApiSpecificStreamInfo; } PaStreamParameters;
typedef struct { PaTime inputBufferAdcTime, currentTime, outputBufferDacTime; } PaStreamCallbackTimeInfo;
typedef struct { int structVersion; PaTime inputLatency, outputLatency; double sampleRate; } PaStreamInfo;
typedef int PaStreamCallback(const void *, void *, unsigned long, const PaStreamCallbackTimeInfo *, unsigned long, void *);
PaError Pa_Initialize(void);
PaError Pa_Terminate(void);
PaError Pa_OpenStream(void **, const PaStreamParameters *, const PaStreamParameters *, double, unsigned long, unsigned long, PaStreamCallback *, void *);
PaError Pa_StartStream(void *);
PaError Pa_StopStream(void *);
PaError Pa_CloseStream(void *);
const char *Pa_GetErrorText(PaError);
const PaStreamInfo *Pa_GetStreamInfo(void *);
#define paFloat32 0x00000001UL
#define paOutputUnderflow 0x00000004UL
#define RECORDS 1024

typedef struct { int64_t position; double now, lead; int64_t frames; } Record;

typedef struct {
    float *buf;               /* capacity frames x channels, interleaved */
    int64_t capacity, channels;
    _Atomic int64_t written;  /* frames published by the writer */
    _Atomic int64_t read;     /* frames consumed by the callback */
    _Atomic int64_t short_blocks, underflows, callbacks;
    _Atomic int64_t records;  /* records written (the last RECORDS are kept) */
    Record record[RECORDS];
    void *stream;
    double latency;
} Ring;

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int callback(const void *in, void *out, unsigned long frames, const PaStreamCallbackTimeInfo *t,
                    unsigned long flags, void *user) {
    Ring *r = (Ring *)user;
    double now = monotonic();
    float *o = (float *)out;
    int64_t rd = atomic_load_explicit(&r->read, memory_order_relaxed);
    int64_t avail = atomic_load_explicit(&r->written, memory_order_acquire) - rd;
    int64_t n = avail < (int64_t)frames ? avail : (int64_t)frames;
    for (int64_t i = 0; i < n; i++) {
        int64_t at = ((rd + i) % r->capacity) * r->channels;
        for (int64_t c = 0; c < r->channels; c++) o[i * r->channels + c] = r->buf[at + c];
    }
    if (n < (int64_t)frames) {
        memset(o + n * r->channels, 0, (size_t)((int64_t)frames - n) * (size_t)r->channels * sizeof(float));
        if (atomic_load(&r->written) > 0) atomic_fetch_add(&r->short_blocks, 1);
    }
    if (flags & paOutputUnderflow) atomic_fetch_add(&r->underflows, 1);
    int64_t k = atomic_load_explicit(&r->records, memory_order_relaxed);
    Record *rec = &r->record[k % RECORDS];
    rec->position = rd;
    rec->now = now;
    rec->lead = t ? t->outputBufferDacTime - t->currentTime : -1.0;
    rec->frames = (int64_t)frames;
    atomic_store_explicit(&r->records, k + 1, memory_order_release);
    atomic_store_explicit(&r->read, rd + n, memory_order_release);
    atomic_fetch_add(&r->callbacks, 1);
    (void)in;
    return 0; /* paContinue */
}

int ar_abi_version(void) { return 1; }

/* Open (not start) a stream on PortAudio device `device`; returns the ring or NULL with `error` set. */
Ring *ar_open(int device, double samplerate, int channels, unsigned long block, double latency, int64_t capacity,
              char *error, int error_len) {
    PaError e = Pa_Initialize();
    if (e) { strncpy(error, Pa_GetErrorText(e), error_len - 1); return NULL; }
    Ring *r = calloc(1, sizeof(Ring));
    r->buf = calloc((size_t)(capacity * channels), sizeof(float));
    r->capacity = capacity;
    r->channels = channels;
    PaStreamParameters p = {device, channels, paFloat32, latency, NULL};
    e = Pa_OpenStream(&r->stream, NULL, &p, samplerate, block, 0, callback, r);
    if (e) {
        strncpy(error, Pa_GetErrorText(e), error_len - 1);
        free(r->buf); free(r); Pa_Terminate();
        return NULL;
    }
    const PaStreamInfo *info = Pa_GetStreamInfo(r->stream);
    r->latency = info ? info->outputLatency : latency;
    return r;
}

double ar_latency(Ring *r) { return r->latency; }
int ar_start(Ring *r) { return Pa_StartStream(r->stream); }
float *ar_buffer(Ring *r) { return r->buf; }
int64_t ar_read(Ring *r) { return atomic_load_explicit(&r->read, memory_order_acquire); }
int64_t ar_written(Ring *r) { return atomic_load_explicit(&r->written, memory_order_relaxed); }
void ar_commit(Ring *r, int64_t frames) { atomic_fetch_add_explicit(&r->written, frames, memory_order_release); }
int64_t ar_records(Ring *r) { return atomic_load_explicit(&r->records, memory_order_acquire); }
int64_t ar_short_blocks(Ring *r) { return atomic_load(&r->short_blocks); }
int64_t ar_underflows(Ring *r) { return atomic_load(&r->underflows); }
int64_t ar_callbacks(Ring *r) { return atomic_load(&r->callbacks); }
/* Copy record k (if still kept) into out; 0 if it has been overwritten. */
int ar_record(Ring *r, int64_t k, Record *out) {
    int64_t now = atomic_load_explicit(&r->records, memory_order_acquire);
    if (k >= now || k < now - RECORDS + 1) return 0;
    *out = r->record[k % RECORDS];
    return atomic_load_explicit(&r->records, memory_order_acquire) < k + RECORDS;
}
void ar_close(Ring *r) {
    if (!r) return;
    Pa_StopStream(r->stream);
    Pa_CloseStream(r->stream);
    Pa_Terminate();
    free(r->buf);
    free(r);
}
