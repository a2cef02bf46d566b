#include "scf_sqlite_vfs.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/// The unix VFS writes at most 0x1ffff bytes a call (`seekAndWrite` masks the count): 120 KiB
/// holds 59 frames of 2 KiB pages, a few hundred calls fewer per thousand pages written.
enum { BUFFER_CAPACITY = 120 << 10 };

typedef struct CoalescingFile CoalescingFile;
struct CoalescingFile {
    sqlite3_file base;          /* pMethods: coalescingMethods */
    sqlite3_file *real;         /* the wrapped VFS's file, allocated right after this struct */
    unsigned char *buffer;      /* a WAL file's pending writes (NULL: writes go straight through) */
    sqlite3_int64 bufferStart;  /* file offset of buffer[0] */
    int bufferLength;
    CoalescingFile *wal;        /* a database file: its open WAL, whose buffer its barrier writes */
    CoalescingFile *database;   /* a WAL file: its database file, if opened through this VFS */
    int lostWrite;              /* a WAL file: the error of a write the barrier could not report */
};

static sqlite3_vfs coalescingVFS;
static sqlite3_io_methods coalescingMethods;
static atomic_llong fileWriteCount;
static atomic_llong sqliteWriteCount;

#define REAL(file) (((CoalescingFile *)(file))->real)

static int flushBuffer(CoalescingFile *file) {
    if (file->bufferLength == 0) return SQLITE_OK;
    int length = file->bufferLength;
    file->bufferLength = 0;
    atomic_fetch_add_explicit(&fileWriteCount, 1, memory_order_relaxed);
    return file->real->pMethods->xWrite(file->real, file->buffer, length, file->bufferStart);
}

/// Writes what is buffered, or reports the write the barrier lost: every later sync, read, size,
/// truncation and write of that WAL file fails with it, so SQLite never takes the file for whole.
static int writePending(CoalescingFile *file) {
    if (file->lostWrite != SQLITE_OK) return file->lostWrite;
    return flushBuffer(file);
}

static int cClose(sqlite3_file *f) {
    CoalescingFile *file = (CoalescingFile *)f;
    int flushed = flushBuffer(file);
    if (file->database) file->database->wal = NULL;
    if (file->wal) file->wal->database = NULL;
    file->wal = NULL;
    file->database = NULL;
    free(file->buffer);
    file->buffer = NULL;
    int closed = file->real->pMethods->xClose(file->real);
    return flushed != SQLITE_OK ? flushed : closed;
}

static int cRead(sqlite3_file *f, void *data, int amount, sqlite3_int64 offset) {
    int rc = writePending((CoalescingFile *)f);
    if (rc != SQLITE_OK) return rc;
    return REAL(f)->pMethods->xRead(REAL(f), data, amount, offset);
}

static int cWrite(sqlite3_file *f, const void *data, int amount, sqlite3_int64 offset) {
    CoalescingFile *file = (CoalescingFile *)f;
    if (file->buffer == NULL) return file->real->pMethods->xWrite(file->real, data, amount, offset);
    if (file->lostWrite != SQLITE_OK) return file->lostWrite;
    atomic_fetch_add_explicit(&sqliteWriteCount, 1, memory_order_relaxed);
    // Anything but the next bytes after the buffered ones (a rewritten frame, a new WAL header)
    // first writes what is buffered, so the file sees the writes in SQLite's order.
    if (file->bufferLength > 0
        && (offset != file->bufferStart + file->bufferLength || file->bufferLength + amount > BUFFER_CAPACITY)) {
        int rc = flushBuffer(file);
        if (rc != SQLITE_OK) return rc;
    }
    if (amount > BUFFER_CAPACITY) {
        atomic_fetch_add_explicit(&fileWriteCount, 1, memory_order_relaxed);
        return file->real->pMethods->xWrite(file->real, data, amount, offset);
    }
    if (file->bufferLength == 0) file->bufferStart = offset;
    memcpy(file->buffer + file->bufferLength, data, (size_t)amount);
    file->bufferLength += amount;
    return SQLITE_OK;
}

static int cTruncate(sqlite3_file *f, sqlite3_int64 size) {
    int rc = writePending((CoalescingFile *)f);
    if (rc != SQLITE_OK) return rc;
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int cSync(sqlite3_file *f, int flags) {
    int rc = writePending((CoalescingFile *)f);
    if (rc != SQLITE_OK) return rc;
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int cFileSize(sqlite3_file *f, sqlite3_int64 *size) {
    int rc = writePending((CoalescingFile *)f);
    if (rc != SQLITE_OK) return rc;
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int cLock(sqlite3_file *f, int level) { return REAL(f)->pMethods->xLock(REAL(f), level); }
static int cUnlock(sqlite3_file *f, int level) { return REAL(f)->pMethods->xUnlock(REAL(f), level); }
static int cCheckReservedLock(sqlite3_file *f, int *out) { return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out); }
static int cSectorSize(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int cDeviceCharacteristics(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }

static int cFileControl(sqlite3_file *f, int op, void *argument) {
    return REAL(f)->pMethods->xFileControl(REAL(f), op, argument);
}

static int cShmMap(sqlite3_file *f, int region, int size, int extend, void volatile **out) {
    return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, out);
}

static int cShmLock(sqlite3_file *f, int offset, int n, int flags) {
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

/// SQLite calls the barrier just before it publishes a new WAL index header (a commit becomes
/// visible to readers): the frames it indexes must be in the file by then.
static void cShmBarrier(sqlite3_file *f) {
    CoalescingFile *file = (CoalescingFile *)f;
    // Under `synchronous=FULL` (the store's setting) the commit's sync already wrote the buffer,
    // so this writes nothing. Otherwise a failure here cannot be returned: the WAL remembers it
    // (`writePending`), and its next use fails instead of building on frames that are missing.
    if (file->wal) {
        int rc = flushBuffer(file->wal);
        if (rc != SQLITE_OK) file->wal->lostWrite = rc;
    }
    file->real->pMethods->xShmBarrier(file->real);
}

static int cShmUnmap(sqlite3_file *f, int deleteFlag) { return REAL(f)->pMethods->xShmUnmap(REAL(f), deleteFlag); }

static int cFetch(sqlite3_file *f, sqlite3_int64 offset, int amount, void **out) {
    CoalescingFile *file = (CoalescingFile *)f;
    if (file->buffer) {   // never memory-map what may still be buffered
        *out = NULL;
        return SQLITE_OK;
    }
    return file->real->pMethods->xFetch(file->real, offset, amount, out);
}

static int cUnfetch(sqlite3_file *f, sqlite3_int64 offset, void *pointer) {
    return REAL(f)->pMethods->xUnfetch(REAL(f), offset, pointer);
}

static int cOpen(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags, int *outFlags) {
    sqlite3_vfs *real = (sqlite3_vfs *)vfs->pAppData;
    CoalescingFile *file = (CoalescingFile *)f;
    memset(file, 0, sizeof *file);
    file->real = (sqlite3_file *)(file + 1);
    int rc = real->xOpen(real, name, file->real, flags, outFlags);
    if (rc != SQLITE_OK) {
        if (file->real->pMethods) file->real->pMethods->xClose(file->real);
        file->base.pMethods = NULL;
        return rc;
    }
    if (file->real->pMethods->iVersion < 3) {
        // The methods forward up to version 3; an older wrapped VFS is used as it is.
        file->real->pMethods->xClose(file->real);
        file->base.pMethods = NULL;
        return SQLITE_CANTOPEN;
    }
    file->base.pMethods = &coalescingMethods;
    if ((flags & SQLITE_OPEN_WAL) && name != NULL && !(flags & SQLITE_OPEN_READONLY)) {
        file->buffer = malloc(BUFFER_CAPACITY);   // NULL: this file's writes simply go straight through
        sqlite3_file *database = sqlite3_database_file_object(name);
        if (database && database->pMethods == &coalescingMethods) {
            file->database = (CoalescingFile *)database;
            file->database->wal = file;
        }
    }
    return SQLITE_OK;
}

static int cDelete(sqlite3_vfs *vfs, const char *name, int syncDirectory) {
    sqlite3_vfs *real = (sqlite3_vfs *)vfs->pAppData;
    return real->xDelete(real, name, syncDirectory);
}

static int cAccess(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
    sqlite3_vfs *real = (sqlite3_vfs *)vfs->pAppData;
    return real->xAccess(real, name, flags, out);
}

static int cFullPathname(sqlite3_vfs *vfs, const char *name, int size, char *out) {
    sqlite3_vfs *real = (sqlite3_vfs *)vfs->pAppData;
    return real->xFullPathname(real, name, size, out);
}

static void *cDlOpen(sqlite3_vfs *vfs, const char *name) {
    sqlite3_vfs *real = (sqlite3_vfs *)vfs->pAppData;
    return real->xDlOpen(real, name);
}

static void cDlError(sqlite3_vfs *vfs, int size, char *out) {
    sqlite3_vfs *real = (sqlite3_vfs *)vfs->pAppData;
    real->xDlError(real, size, out);
}

static void (*cDlSym(sqlite3_vfs *vfs, void *handle, const char *symbol))(void) {
    sqlite3_vfs *real = (sqlite3_vfs *)vfs->pAppData;
    return real->xDlSym(real, handle, symbol);
}

static void cDlClose(sqlite3_vfs *vfs, void *handle) {
    sqlite3_vfs *real = (sqlite3_vfs *)vfs->pAppData;
    real->xDlClose(real, handle);
}

static int cRandomness(sqlite3_vfs *vfs, int size, char *out) {
    sqlite3_vfs *real = (sqlite3_vfs *)vfs->pAppData;
    return real->xRandomness(real, size, out);
}

static int cSleep(sqlite3_vfs *vfs, int microseconds) {
    sqlite3_vfs *real = (sqlite3_vfs *)vfs->pAppData;
    return real->xSleep(real, microseconds);
}

static int cCurrentTime(sqlite3_vfs *vfs, double *out) {
    sqlite3_vfs *real = (sqlite3_vfs *)vfs->pAppData;
    return real->xCurrentTime(real, out);
}

static int cGetLastError(sqlite3_vfs *vfs, int size, char *out) {
    sqlite3_vfs *real = (sqlite3_vfs *)vfs->pAppData;
    return real->xGetLastError ? real->xGetLastError(real, size, out) : 0;
}

static int cCurrentTimeInt64(sqlite3_vfs *vfs, sqlite3_int64 *out) {
    sqlite3_vfs *real = (sqlite3_vfs *)vfs->pAppData;
    if (real->iVersion >= 2 && real->xCurrentTimeInt64) return real->xCurrentTimeInt64(real, out);
    double days;
    int rc = real->xCurrentTime(real, &days);
    *out = (sqlite3_int64)(days * 86400000.0);
    return rc;
}

static const char *registeredName = NULL;
static pthread_once_t registration = PTHREAD_ONCE_INIT;

static void registerVFS(void) {
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (real == NULL) return;
    coalescingMethods = (sqlite3_io_methods){
        .iVersion = 3,
        .xClose = cClose, .xRead = cRead, .xWrite = cWrite, .xTruncate = cTruncate, .xSync = cSync,
        .xFileSize = cFileSize, .xLock = cLock, .xUnlock = cUnlock, .xCheckReservedLock = cCheckReservedLock,
        .xFileControl = cFileControl, .xSectorSize = cSectorSize, .xDeviceCharacteristics = cDeviceCharacteristics,
        .xShmMap = cShmMap, .xShmLock = cShmLock, .xShmBarrier = cShmBarrier, .xShmUnmap = cShmUnmap,
        .xFetch = cFetch, .xUnfetch = cUnfetch,
    };
    coalescingVFS = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(CoalescingFile) + real->szOsFile,
        .mxPathname = real->mxPathname,
        .zName = "scf-coalescing-wal",
        .pAppData = real,
        .xOpen = cOpen, .xDelete = cDelete, .xAccess = cAccess, .xFullPathname = cFullPathname,
        .xDlOpen = cDlOpen, .xDlError = cDlError, .xDlSym = cDlSym, .xDlClose = cDlClose,
        .xRandomness = cRandomness, .xSleep = cSleep, .xCurrentTime = cCurrentTime,
        .xGetLastError = cGetLastError, .xCurrentTimeInt64 = cCurrentTimeInt64,
    };
    if (sqlite3_vfs_register(&coalescingVFS, 0) == SQLITE_OK) registeredName = coalescingVFS.zName;
}

static pthread_once_t configuration = PTHREAD_ONCE_INIT;

static void configureOnce(void) {
    // SQLITE_MISUSE if SQLite was already initialized (someone opened a connection first): the
    // setting then stays as it was, which is only slower.
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

void scf_sqlite_configure(void) {
    pthread_once(&configuration, configureOnce);
}

const char *scf_sqlite_coalescing_vfs(void) {
    scf_sqlite_configure();
    pthread_once(&registration, registerVFS);
    return registeredName;
}

void scf_sqlite_coalescing_counts(long long *fileWrites, long long *sqliteWrites) {
    *fileWrites = atomic_load_explicit(&fileWriteCount, memory_order_relaxed);
    *sqliteWrites = atomic_load_explicit(&sqliteWriteCount, memory_order_relaxed);
}
