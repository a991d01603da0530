/* Exercises the MantisDB C API through the shared library: open, put, get,
 * batch, multi-get, scan, snapshot, transactions, stats, close, and the error
 * paths. Run under valgrind by `make test-c`: no leaks, no invalid accesses. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "mantisdb.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    checks++;                                                                  \
    if (!(cond)) {                                                             \
      failures++;                                                              \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                    \
      fprintf(stderr, __VA_ARGS__);                                            \
      fprintf(stderr, "\n");                                                   \
    }                                                                          \
  } while (0)

#define S(str) (const uint8_t *)(str), strlen(str)

/* Expects `st` and an error object with that status and a message. */
static void expect_error(MantisStatus st, MantisError *err, MantisStatus want, const char *what) {
  CHECK(st == want, "%s: status %u, want %u", what, st, want);
  CHECK(err != NULL && err->status == want && err->message_len > 0 &&
            strlen(err->message) == err->message_len,
        "%s: no proper error object", what);
  mantis_error_free(err);
}

/* Appends one op to a batch buffer in the format of mantis_write_batch. */
static void append_op(uint8_t **buf, size_t *len, uint8_t kind, const char *k, const char *v, uint64_t ttl) {
  uint32_t kl = (uint32_t)strlen(k), vl = (uint32_t)strlen(v);
  *buf = realloc(*buf, *len + MANTIS_BATCH_OP_HEADER_LEN + kl + vl);
  uint8_t *p = *buf + *len;
  p[0] = kind;
  memcpy(p + MANTIS_BATCH_KEY_LEN_OFFSET, &kl, 4);
  memcpy(p + MANTIS_BATCH_VALUE_LEN_OFFSET, &vl, 4);
  memcpy(p + MANTIS_BATCH_TTL_OFFSET, &ttl, 8);
  memcpy(p + MANTIS_BATCH_OP_HEADER_LEN, k, kl);
  memcpy(p + MANTIS_BATCH_OP_HEADER_LEN + kl, v, vl);
  *len += MANTIS_BATCH_OP_HEADER_LEN + kl + vl;
}

static int64_t now_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int main(void) {
  char dir[] = "/tmp/mantis-abi-XXXXXX";
  if (!mkdtemp(dir)) { perror("mkdtemp"); return 2; }
  MantisError *err = NULL;
  MantisOptions opts = mantis_options_default();
  opts.sync = MANTIS_SYNC_NEVER; /* fast */
  MantisDb *db = NULL;
  MantisStatus st = mantis_open(S(dir), &opts, &db, &err);
  CHECK(st == MANTIS_OK && db != NULL, "open: %u", st);

  /* A second open of the same directory fails with LOCKED and a message. */
  MantisDb *db2 = NULL;
  err = NULL;
  st = mantis_open(S(dir), &opts, &db2, &err);
  expect_error(st, err, MANTIS_LOCKED, "second open");
  CHECK(db2 == NULL, "second open wrote its out-parameter");

  /* Put / get, binary value with a NUL byte. */
  const uint8_t bin[] = {'a', 0, 'b', 0xff};
  CHECK(mantis_put(db, S("k1"), bin, sizeof bin, NULL) == MANTIS_OK, "put");
  MantisBuf buf = {0};
  st = mantis_get(db, S("k1"), &buf, NULL);
  CHECK(st == MANTIS_OK && buf.len == 4 && memcmp(buf.data, bin, 4) == 0, "get");
  mantis_buf_free(&buf);
  CHECK(buf.data == NULL && buf.len == 0, "buf_free clears");
  mantis_buf_free(&buf); /* freeing a cleared buffer is harmless */
  mantis_buf_free(NULL);
  st = mantis_get(db, S("missing"), &buf, NULL);
  CHECK(st == MANTIS_NOT_FOUND && buf.data == NULL, "get missing");

  /* get_into: too small, then right. */
  uint8_t small[2];
  size_t vlen = 0;
  st = mantis_get_into(db, S("k1"), small, sizeof small, &vlen, NULL);
  CHECK(st == MANTIS_BUFFER_TOO_SMALL && vlen == 4, "get_into small: %u %zu", st, vlen);
  uint8_t big[16];
  st = mantis_get_into(db, S("k1"), big, sizeof big, &vlen, NULL);
  CHECK(st == MANTIS_OK && vlen == 4 && memcmp(big, bin, 4) == 0, "get_into");

  /* Empty value is a value; delete makes it absent. */
  CHECK(mantis_put(db, S("empty"), NULL, 0, NULL) == MANTIS_OK, "put empty value");
  st = mantis_get_into(db, S("empty"), NULL, 0, &vlen, NULL);
  CHECK(st == MANTIS_OK && vlen == 0, "get empty value");
  CHECK(mantis_delete(db, S("empty"), NULL) == MANTIS_OK, "delete");
  CHECK(mantis_get(db, S("empty"), &buf, NULL) == MANTIS_NOT_FOUND, "deleted");

  /* Error paths. */
  err = NULL;
  st = mantis_put(db, NULL, 0, bin, 1, &err);
  expect_error(st, err, MANTIS_INVALID_KEY, "empty key");
  err = NULL;
  st = mantis_put(db, NULL, 5, bin, 1, &err);
  expect_error(st, err, MANTIS_NULL_PARAMETER, "NULL key with a length");
  err = NULL;
  st = mantis_put(NULL, S("k"), bin, 1, &err);
  expect_error(st, err, MANTIS_NULL_PARAMETER, "NULL handle");
  err = NULL;
  st = mantis_get(db, S("k1"), NULL, &err);
  expect_error(st, err, MANTIS_NULL_PARAMETER, "NULL out");
  st = mantis_put(db, NULL, 0, bin, 1, NULL); /* err may be NULL */
  CHECK(st == MANTIS_INVALID_KEY, "NULL err pointer");
  err = NULL;
  st = mantis_put_ttl(db, S("t"), bin, 1, 0, &err);
  expect_error(st, err, MANTIS_INVALID_ARGUMENT, "zero ttl");

  /* Atomic batch: two puts and a delete. */
  uint8_t *batch = NULL;
  size_t blen = 0;
  append_op(&batch, &blen, MANTIS_BATCH_PUT, "p:1", "one", 0);
  append_op(&batch, &blen, MANTIS_BATCH_PUT, "p:2", "two", 0);
  append_op(&batch, &blen, MANTIS_BATCH_PUT, "p:3", "three", 60000);
  append_op(&batch, &blen, MANTIS_BATCH_DELETE, "k1", "", 0);
  CHECK(mantis_write_batch(db, batch, blen, 4, NULL) == MANTIS_OK, "batch");
  err = NULL;
  st = mantis_write_batch(db, batch, blen - 1, 4, &err);
  expect_error(st, err, MANTIS_INVALID_ARGUMENT, "truncated batch");
  free(batch);

  /* Multi-get: found, missing. */
  uint8_t keys[64];
  size_t kl = 0;
  const char *ks[] = {"p:1", "nope"};
  for (int i = 0; i < 2; i++) {
    uint32_t l = (uint32_t)strlen(ks[i]);
    memcpy(keys + kl, &l, 4);
    memcpy(keys + kl + MANTIS_MULTI_GET_KEY_HEADER_LEN, ks[i], l);
    kl += MANTIS_MULTI_GET_KEY_HEADER_LEN + l;
  }
  st = mantis_multi_get(db, keys, kl, 2, &buf, NULL);
  const size_t vh = MANTIS_MULTI_GET_VALUE_HEADER_LEN;
  CHECK(st == MANTIS_OK && buf.len == vh + 3 + vh, "multi_get: %u %zu", st, buf.len);
  CHECK(buf.data[0] == 1 && memcmp(buf.data + vh, "one", 3) == 0 && buf.data[vh + 3] == 0, "multi_get content");
  mantis_buf_free(&buf);

  /* The same keys into the caller's buffer: too small for "one" (nothing
     copied, its length given), then room for all. */
  {
    uint8_t small[2], room[8], lens[16];
    size_t done = 99;
    uint64_t l0 = 0, l1 = 0;
    st = mantis_get_many_into(db, keys, kl, 2, small, sizeof small, lens, &done, NULL);
    memcpy(&l0, lens, 8);
    CHECK(st == MANTIS_BUFFER_TOO_SMALL && done == 0 && l0 == 3, "get_many_into small: %u %zu %llu", st, done,
          (unsigned long long)l0);
    st = mantis_get_many_into(db, keys, kl, 2, room, sizeof room, lens, &done, NULL);
    memcpy(&l0, lens, 8);
    memcpy(&l1, lens + 8, 8);
    CHECK(st == MANTIS_OK && done == 2 && l0 == 3 && memcmp(room, "one", 3) == 0 && l1 == MANTIS_VALUE_ABSENT,
          "get_many_into: %u %zu %llu %llu", st, done, (unsigned long long)l0, (unsigned long long)l1);
    err = NULL;
    st = mantis_get_many_into(db, keys, kl - 1, 2, room, sizeof room, lens, &done, &err);
    expect_error(st, err, MANTIS_INVALID_ARGUMENT, "get_many_into truncated keys");
  }

  /* Prefix iterator in batches of 2. */
  MantisIter *it = NULL;
  CHECK(mantis_iter_new(db, S("p:"), NULL, 0, true, &it, NULL) == MANTIS_OK, "iter_new");
  CHECK(mantis_put(db, S("p:9"), S("later"), NULL) == MANTIS_OK, "put during scan");
  size_t total = 0, count = 0;
  char last[8] = {0};
  do {
    st = mantis_iter_next_batch(it, 2, 1 << 20, &buf, &count, NULL);
    CHECK(st == MANTIS_OK, "next_batch");
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
      uint32_t k, v;
      memcpy(&k, buf.data + at, 4);
      memcpy(&v, buf.data + at + 4, 4);
      CHECK(k < sizeof last, "key length");
      memcpy(last, buf.data + at + MANTIS_ITER_PAIR_HEADER_LEN, k);
      last[k] = 0;
      at += MANTIS_ITER_PAIR_HEADER_LEN + k + v;
    }
    total += count;
    mantis_buf_free(&buf);
  } while (count > 0);
  CHECK(total == 3 && strcmp(last, "p:3") == 0, "scan saw %zu keys, last %s (the later put must be invisible)", total, last);
  CHECK(mantis_iter_seek(it, S("p:2"), NULL) == MANTIS_OK, "seek");
  st = mantis_iter_next_batch(it, 10, 1 << 20, &buf, &count, NULL);
  CHECK(st == MANTIS_OK && count == 2, "after seek: %zu", count);
  mantis_buf_free(&buf);
  /* The same through borrowed views: the iterator's buffer, valid until its next call. */
  CHECK(mantis_iter_seek(it, S("p:"), NULL) == MANTIS_OK, "seek to start");
  total = 0;
  const uint8_t *view = NULL;
  size_t view_len = 0;
  do {
    st = mantis_iter_next_view(it, 2, 1 << 20, &view, &view_len, &count, NULL);
    CHECK(st == MANTIS_OK, "next_view");
    CHECK((count == 0) == (view == NULL), "view is NULL exactly when empty");
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
      uint32_t k, v;
      memcpy(&k, view + at, 4);
      memcpy(&v, view + at + 4, 4);
      CHECK(k < sizeof last, "key length");
      memcpy(last, view + at + MANTIS_ITER_PAIR_HEADER_LEN, k);
      last[k] = 0;
      at += MANTIS_ITER_PAIR_HEADER_LEN + k + v;
    }
    CHECK(at == view_len, "view length %zu, pairs took %zu", view_len, at);
    total += count;
  } while (count > 0);
  CHECK(total == 3 && strcmp(last, "p:3") == 0, "view scan saw %zu keys, last %s", total, last);
  CHECK(mantis_iter_next_view(it, 2, 1 << 20, NULL, &view_len, &count, NULL) == MANTIS_NULL_PARAMETER, "next_view NULL data");
  /* The same through pair references: nothing copied, valid until the next call. */
  CHECK(mantis_iter_seek(it, S("p:"), NULL) == MANTIS_OK, "seek to start");
  total = 0;
  const MantisPairRef *refs = NULL;
  do {
    st = mantis_iter_next_refs(it, 2, &refs, &count, NULL);
    CHECK(st == MANTIS_OK, "next_refs");
    CHECK((count == 0) == (refs == NULL), "refs is NULL exactly when empty");
    CHECK(count <= 2, "next_refs returned %zu pairs for 2", count);
    for (size_t i = 0; i < count; i++) {
      CHECK(refs[i].key_len < sizeof last, "key length");
      memcpy(last, refs[i].key, refs[i].key_len);
      last[refs[i].key_len] = 0;
      CHECK(refs[i].value_len > 0 && refs[i].value != NULL, "value of %s", last);
    }
    total += count;
  } while (count > 0);
  CHECK(total == 3 && strcmp(last, "p:3") == 0, "refs scan saw %zu keys, last %s", total, last);
  CHECK(mantis_iter_next_refs(it, 2, NULL, &count, NULL) == MANTIS_NULL_PARAMETER, "next_refs NULL pairs");
  mantis_iter_free(it);
  mantis_iter_free(NULL);

  /* Snapshot. */
  MantisSnapshot *snap = NULL;
  CHECK(mantis_snapshot_new(db, &snap, NULL) == MANTIS_OK, "snapshot");
  CHECK(mantis_put(db, S("p:1"), S("changed"), NULL) == MANTIS_OK, "put after snapshot");
  st = mantis_snapshot_get(snap, S("p:1"), &buf, NULL);
  CHECK(st == MANTIS_OK && buf.len == 3 && memcmp(buf.data, "one", 3) == 0, "snapshot get");
  mantis_buf_free(&buf);
  mantis_snapshot_free(snap);

  /* Transactions: commit, then a conflict. */
  MantisTxn *t1 = NULL, *t2 = NULL;
  CHECK(mantis_txn_begin(db, &t1, NULL) == MANTIS_OK, "begin");
  CHECK(mantis_txn_put(t1, S("acct"), S("100"), NULL) == MANTIS_OK, "txn put");
  st = mantis_txn_get(t1, S("acct"), &buf, NULL);
  CHECK(st == MANTIS_OK && buf.len == 3, "read your writes");
  mantis_buf_free(&buf);
  CHECK(mantis_txn_commit(t1, NULL) == MANTIS_OK, "commit");
  err = NULL;
  st = mantis_txn_commit(t1, &err);
  expect_error(st, err, MANTIS_INVALID_ARGUMENT, "commit twice");
  mantis_txn_free(t1);
  CHECK(mantis_txn_begin(db, &t1, NULL) == MANTIS_OK, "begin t1");
  CHECK(mantis_txn_begin(db, &t2, NULL) == MANTIS_OK, "begin t2");
  CHECK(mantis_txn_get(t1, S("acct"), &buf, NULL) == MANTIS_OK, "t1 read");
  mantis_buf_free(&buf);
  CHECK(mantis_txn_put(t1, S("acct"), S("90"), NULL) == MANTIS_OK, "t1 put");
  CHECK(mantis_txn_put(t2, S("acct"), S("80"), NULL) == MANTIS_OK, "t2 put");
  CHECK(mantis_txn_commit(t2, NULL) == MANTIS_OK, "t2 commit");
  err = NULL;
  st = mantis_txn_commit(t1, &err);
  expect_error(st, err, MANTIS_CONFLICT, "t1 conflict");
  CHECK(mantis_txn_rollback(t1, NULL) == MANTIS_OK, "rollback after finish");
  mantis_txn_free(t1);
  mantis_txn_free(t2);
  mantis_txn_free(NULL);

  /* Stats, sync, compact, checkpoint. */
  MantisStats stats;
  CHECK(mantis_stats(db, &stats, NULL) == MANTIS_OK && stats.keys == 5, "stats keys %llu", (unsigned long long)stats.keys);
  CHECK(mantis_sync(db, NULL) == MANTIS_OK, "sync");
  CHECK(mantis_compact(db, NULL) == MANTIS_OK, "compact");
  char cp[sizeof dir + 4];
  snprintf(cp, sizeof cp, "%s.cp", dir);
  CHECK(mantis_checkpoint(db, S(cp), NULL) == MANTIS_OK, "checkpoint");

  /* Key metadata: versions, absolute expiries, a past expiry removing the key. */
  const int64_t later = now_ms() + 3600 * 1000;
  uint64_t seq1 = 0, seq2 = 0, seq = 0;
  int64_t exp = -1;
  CHECK(mantis_put(db, S("m"), S("v"), NULL) == MANTIS_OK, "put m");
  st = mantis_get_meta(db, S("m"), &buf, &seq1, &exp, NULL);
  CHECK(st == MANTIS_OK && buf.len == 1 && buf.data[0] == 'v' && seq1 > 0 && exp == 0, "get_meta: %u", st);
  mantis_buf_free(&buf);
  CHECK(mantis_put(db, S("m"), S("v"), NULL) == MANTIS_OK, "put m again");
  st = mantis_get_meta(db, S("m"), &buf, &seq2, &exp, NULL);
  CHECK(st == MANTIS_OK && seq2 > seq1 && exp == 0, "same value, new version: %llu after %llu",
        (unsigned long long)seq2, (unsigned long long)seq1);
  mantis_buf_free(&buf);
  seq = 77, exp = 77;
  st = mantis_get_meta(db, S("no-such"), &buf, &seq, &exp, NULL);
  CHECK(st == MANTIS_NOT_FOUND && buf.data == NULL && seq == 77 && exp == 77, "get_meta missing writes nothing");
  err = NULL;
  st = mantis_get_meta(db, S("m"), &buf, NULL, &exp, &err);
  expect_error(st, err, MANTIS_NULL_PARAMETER, "get_meta NULL seq");
  CHECK(buf.data == NULL, "get_meta wrote out on failure");

  batch = NULL;
  blen = 0;
  append_op(&batch, &blen, MANTIS_BATCH_PUT_AT, "at:future", "f", (uint64_t)later);
  append_op(&batch, &blen, MANTIS_BATCH_PUT_AT, "m", "gone", (uint64_t)(now_ms() - 1000));
  CHECK(mantis_write_batch(db, batch, blen, 2, NULL) == MANTIS_OK, "batch with absolute expiries");
  free(batch);
  st = mantis_get_meta(db, S("at:future"), &buf, &seq, &exp, NULL);
  CHECK(st == MANTIS_OK && exp == later && seq > seq2, "put-at expiry %lld, want %lld", (long long)exp, (long long)later);
  mantis_buf_free(&buf);
  CHECK(mantis_get(db, S("m"), &buf, NULL) == MANTIS_NOT_FOUND, "a past put-at removes the key");

  MantisTxn *tm = NULL;
  CHECK(mantis_txn_begin(db, &tm, NULL) == MANTIS_OK, "begin meta txn");
  st = mantis_txn_get_meta(tm, S("at:future"), &buf, &seq, &exp, NULL);
  CHECK(st == MANTIS_OK && exp == later && seq > 0, "txn get_meta");
  mantis_buf_free(&buf);
  CHECK(mantis_txn_put_expiry(tm, S("at:txn"), S("t"), later + 1, NULL) == MANTIS_OK, "txn put_expiry");
  st = mantis_txn_get_meta(tm, S("at:txn"), &buf, &seq, &exp, NULL);
  CHECK(st == MANTIS_OK && seq == 0 && exp == later + 1, "own write: seq %llu exp %lld", (unsigned long long)seq, (long long)exp);
  mantis_buf_free(&buf);
  CHECK(mantis_txn_put_expiry(tm, S("at:future"), S("x"), -5, NULL) == MANTIS_OK, "txn put_expiry in the past");
  CHECK(mantis_txn_get_meta(tm, S("at:future"), &buf, &seq, &exp, NULL) == MANTIS_NOT_FOUND, "own past expiry hides the key");
  /* Another writer rewrites a key this transaction read: conflict. */
  CHECK(mantis_put(db, S("at:future"), S("f"), NULL) == MANTIS_OK, "concurrent rewrite");
  err = NULL;
  st = mantis_txn_commit(tm, &err);
  expect_error(st, err, MANTIS_CONFLICT, "txn get_meta read set");
  err = NULL;
  st = mantis_txn_get_meta(tm, S("at:txn"), &buf, &seq, &exp, &err);
  expect_error(st, err, MANTIS_INVALID_ARGUMENT, "get_meta on a finished txn");
  mantis_txn_free(tm);
  CHECK(mantis_txn_begin(db, &tm, NULL) == MANTIS_OK, "begin meta txn 2");
  CHECK(mantis_txn_put_expiry(tm, S("at:txn"), S("t"), later + 1, NULL) == MANTIS_OK, "txn put_expiry 2");
  CHECK(mantis_txn_commit(tm, NULL) == MANTIS_OK, "commit meta txn");
  mantis_txn_free(tm);
  st = mantis_get_meta(db, S("at:txn"), &buf, &seq, &exp, NULL);
  CHECK(st == MANTIS_OK && exp == later + 1 && seq > seq2, "committed put_expiry");
  mantis_buf_free(&buf);

  /* Close: later calls answer CLOSED; free is separate. */
  CHECK(mantis_close(db, NULL) == MANTIS_OK, "close");
  err = NULL;
  st = mantis_get(db, S("p:2"), &buf, &err);
  expect_error(st, err, MANTIS_CLOSED, "get after close");
  CHECK(mantis_close(db, NULL) == MANTIS_OK, "close twice");
  mantis_db_free(db);
  mantis_db_free(NULL);

  /* The offline check of the closed directory: a JSON report without
     damage, counting the 7 live keys (the 5 of the stats above, plus
     at:future and at:txn; m was removed by its past expiry); a directory
     that does not exist is an error, not a report. */
  st = mantis_check_dir(S(dir), &buf, NULL);
  CHECK(st == MANTIS_OK && buf.len > 0, "check_dir: %u", st);
  if (st == MANTIS_OK && buf.len > 0) {
    char *report = malloc(buf.len + 1);
    memcpy(report, buf.data, buf.len);
    report[buf.len] = 0;
    CHECK(report[0] == '{' && strstr(report, "\"damage\":[]") && strstr(report, "\"keys\":7,"), "check_dir report: %s", report);
    free(report);
  }
  mantis_buf_free(&buf);
  err = NULL;
  buf.len = 7;
  st = mantis_check_dir(S("/nonexistent/mantisdb-check"), &buf, &err);
  expect_error(st, err, MANTIS_IO, "check_dir of a missing directory");
  CHECK(buf.len == 7, "check_dir wrote its out-parameter on failure");

  /* The checkpoint opens as a database with the data. */
  CHECK(mantis_open(S(cp), &opts, &db, NULL) == MANTIS_OK, "open checkpoint");
  st = mantis_get(db, S("p:2"), &buf, NULL);
  CHECK(st == MANTIS_OK && buf.len == 3 && memcmp(buf.data, "two", 3) == 0, "checkpoint content");
  mantis_buf_free(&buf);

  /* Updates evaluated in the commit (on the checkpoint's copy, so the
     counts checked above stay as they were): INCRBY, APPEND, refusals. */
  {
    int64_t n = 0;
    uint8_t outcome = 9;
    uint64_t ticket = 1;
    st = mantis_incr_by_begin(db, S("ctr"), 5, &n, &outcome, &ticket, NULL);
    CHECK(st == MANTIS_OK && outcome == MANTIS_UPDATE_DONE && n == 5 && ticket == 0, "incr_by: %u %u %lld", st, outcome, (long long)n);
    st = mantis_incr_by_begin(db, S("ctr"), -7, &n, &outcome, &ticket, NULL);
    CHECK(st == MANTIS_OK && outcome == MANTIS_UPDATE_DONE && n == -2, "incr_by -7: %lld", (long long)n);
    CHECK(mantis_put(db, S("word"), S("abc"), NULL) == MANTIS_OK, "put word");
    st = mantis_incr_by_begin(db, S("word"), 1, &n, &outcome, &ticket, NULL);
    CHECK(st == MANTIS_OK && outcome == MANTIS_UPDATE_NOT_INTEGER, "incr_by of a word: %u", outcome);
    st = mantis_append_begin(db, S("word"), S("de"), 5, &n, &outcome, &ticket, NULL);
    CHECK(st == MANTIS_OK && outcome == MANTIS_UPDATE_DONE && n == 5, "append: %u %lld", outcome, (long long)n);
    st = mantis_append_begin(db, S("word"), S("f"), 5, &n, &outcome, &ticket, NULL);
    CHECK(st == MANTIS_OK && outcome == MANTIS_UPDATE_TOO_LONG, "append past max_len: %u", outcome);
    st = mantis_incr_by_begin(db, S("ctr"), 1, NULL, &outcome, &ticket, &err);
    expect_error(st, err, MANTIS_NULL_PARAMETER, "incr_by with a NULL result");
    err = NULL;
  }
  mantis_db_free(db);

  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s %s", dir, cp);
  if (system(cmd) != 0) fprintf(stderr, "cleanup failed\n");
  printf("%s: %d passed, %d failed\n", mantis_version(), checks - failures, failures);
  return failures == 0 ? 0 : 1;
}
