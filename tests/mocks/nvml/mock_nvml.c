/* A mock libnvidia-ml.so.1 for tests: implements the few NVML entry points accel-dra resolves,
 * over GPUs described in the file named by $MOCK_NVML_CONFIG (read at the first nvmlInit_v2).
 *
 * Config format, one directive per line ('#' starts a comment):
 *   driver <version string>         nvmlSystemGetDriverVersion (default "550.54.15")
 *   cuda <int>                      nvmlSystemGetCudaDriverVersion_v2 (default 12040)
 *   init_error <code>               nvmlInit_v2 returns <code>
 *   fail <function> <code> [index]  <function> returns <code> (for GPU <index> only, if given)
 *   gpu <index> <uuid> <busId> <memoryBytes> <ccMajor> <ccMinor> <arch> <name, rest of line>
 *
 * Without $MOCK_NVML_CONFIG, nvmlInit_v2 fails with NVML_ERROR_DRIVER_NOT_LOADED. Built with
 * -DMOCK_NVML_NO_ARCH it lacks nvmlDeviceGetArchitecture (an older NVML). Only the ABI facts of
 * the public NVML API are reproduced here; no NVIDIA header is used. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOCK_EXPORT __attribute__((visibility("default")))

typedef int nvmlReturn_t;
enum {
  NVML_SUCCESS = 0,
  NVML_ERROR_UNINITIALIZED = 1,
  NVML_ERROR_INVALID_ARGUMENT = 2,
  NVML_ERROR_NOT_SUPPORTED = 3,
  NVML_ERROR_INSUFFICIENT_SIZE = 7,
  NVML_ERROR_DRIVER_NOT_LOADED = 9,
  NVML_ERROR_UNKNOWN = 999
};

#define MAX_GPUS 64
#define MAX_FAILS 32

struct nvmlDevice_st {
  unsigned index;
  char uuid[96];
  char bus_id[32];
  char name[96];
  unsigned long long memory;
  int cc_major;
  int cc_minor;
  unsigned arch;
};
typedef struct nvmlDevice_st* nvmlDevice_t;

typedef struct {
  char busIdLegacy[16];
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pciDeviceId;
  unsigned int pciSubSystemId;
  char busId[32];
} nvmlPciInfo_t;

typedef struct {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
} nvmlMemory_t;

struct fail_rule {
  char function[64];
  int code;
  int index; /* -1: every GPU */
};

static struct nvmlDevice_st g_gpus[MAX_GPUS];
static unsigned g_gpu_count;
static struct fail_rule g_fails[MAX_FAILS];
static unsigned g_fail_count;
static char g_driver[80];
static int g_cuda;
static int g_init_error;
static int g_refcount;

/* For tests: the current nvmlInit_v2/nvmlShutdown balance. */
MOCK_EXPORT int mock_nvml_init_refcount(void) { return g_refcount; }

static void copy_str(char* dst, size_t size, const char* src) {
  size_t n = strlen(src);
  if (n >= size) n = size - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

static int load_config(void) {
  const char* path = getenv("MOCK_NVML_CONFIG");
  g_gpu_count = 0;
  g_fail_count = 0;
  copy_str(g_driver, sizeof(g_driver), "550.54.15");
  g_cuda = 12040;
  g_init_error = 0;
  if (path == NULL || path[0] == '\0') return NVML_ERROR_DRIVER_NOT_LOADED;
  FILE* f = fopen(path, "r");
  if (f == NULL) return NVML_ERROR_DRIVER_NOT_LOADED;
  char line[512];
  while (fgets(line, sizeof(line), f) != NULL) {
    line[strcspn(line, "\r\n#")] = '\0';
    char key[32];
    int consumed = 0;
    if (sscanf(line, "%31s %n", key, &consumed) != 1) continue;
    const char* rest = line + consumed;
    if (strcmp(key, "driver") == 0) {
      copy_str(g_driver, sizeof(g_driver), rest);
    } else if (strcmp(key, "cuda") == 0) {
      g_cuda = atoi(rest);
    } else if (strcmp(key, "init_error") == 0) {
      g_init_error = atoi(rest);
    } else if (strcmp(key, "fail") == 0 && g_fail_count < MAX_FAILS) {
      struct fail_rule* r = &g_fails[g_fail_count];
      r->index = -1;
      if (sscanf(rest, "%63s %d %d", r->function, &r->code, &r->index) >= 2) ++g_fail_count;
    } else if (strcmp(key, "gpu") == 0 && g_gpu_count < MAX_GPUS) {
      struct nvmlDevice_st* g = &g_gpus[g_gpu_count];
      int name_at = 0;
      if (sscanf(rest, "%u %95s %31s %llu %d %d %u %n", &g->index, g->uuid, g->bus_id, &g->memory,
                 &g->cc_major, &g->cc_minor, &g->arch, &name_at) == 7 &&
          name_at > 0) {
        copy_str(g->name, sizeof(g->name), rest + name_at);
        ++g_gpu_count;
      }
    }
  }
  fclose(f);
  return NVML_SUCCESS;
}

static int injected(const char* function, nvmlDevice_t dev) {
  for (unsigned i = 0; i < g_fail_count; ++i) {
    if (strcmp(g_fails[i].function, function) != 0) continue;
    if (g_fails[i].index < 0 || (dev != NULL && (unsigned)g_fails[i].index == dev->index)) {
      return g_fails[i].code;
    }
  }
  return NVML_SUCCESS;
}

#define CHECK(function, dev)                              \
  do {                                                    \
    if (g_refcount <= 0) return NVML_ERROR_UNINITIALIZED; \
    int _rc = injected(function, dev);                    \
    if (_rc != NVML_SUCCESS) return _rc;                  \
  } while (0)

static nvmlReturn_t put_string(char* buf, unsigned length, const char* value) {
  if (buf == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  if (strlen(value) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
  memcpy(buf, value, strlen(value) + 1);
  return NVML_SUCCESS;
}

MOCK_EXPORT nvmlReturn_t nvmlInit_v2(void) {
  if (g_refcount == 0) {
    int rc = load_config();
    if (rc != NVML_SUCCESS) return rc;
    if (g_init_error != 0) return g_init_error;
  }
  ++g_refcount;
  return NVML_SUCCESS;
}

MOCK_EXPORT nvmlReturn_t nvmlShutdown(void) {
  if (g_refcount <= 0) return NVML_ERROR_UNINITIALIZED;
  --g_refcount;
  return NVML_SUCCESS;
}

MOCK_EXPORT const char* nvmlErrorString(nvmlReturn_t result) {
  switch (result) {
    case 0:
      return "Success";
    case 1:
      return "Uninitialized";
    case 2:
      return "Invalid Argument";
    case 3:
      return "Not Supported";
    case 4:
      return "Insufficient Permissions";
    case 5:
      return "Already Initialized";
    case 6:
      return "Not Found";
    case 7:
      return "Insufficient Size";
    case 8:
      return "Insufficient External Power";
    case 9:
      return "Driver Not Loaded";
    case 10:
      return "Timeout";
    case 12:
      return "NVML Shared Library Not Found";
    case 13:
      return "Function Not Found";
    case 15:
      return "GPU is lost";
    case 18:
      return "RM has detected an NVML/RM version mismatch.";
    default:
      return "Unknown Error";
  }
}

MOCK_EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char* version, unsigned length) {
  CHECK("nvmlSystemGetDriverVersion", NULL);
  return put_string(version, length, g_driver);
}

MOCK_EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int* cuda) {
  CHECK("nvmlSystemGetCudaDriverVersion_v2", NULL);
  if (cuda == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *cuda = g_cuda;
  return NVML_SUCCESS;
}

MOCK_EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned* count) {
  CHECK("nvmlDeviceGetCount_v2", NULL);
  if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *count = g_gpu_count;
  return NVML_SUCCESS;
}

MOCK_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, nvmlDevice_t* device) {
  if (g_refcount <= 0) return NVML_ERROR_UNINITIALIZED;
  if (device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  for (unsigned i = 0; i < g_gpu_count; ++i) {
    if (g_gpus[i].index != index) continue;
    int rc = injected("nvmlDeviceGetHandleByIndex_v2", &g_gpus[i]);
    if (rc != NVML_SUCCESS) return rc;
    *device = &g_gpus[i];
    return NVML_SUCCESS;
  }
  return NVML_ERROR_INVALID_ARGUMENT;
}

MOCK_EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char* uuid, unsigned length) {
  CHECK("nvmlDeviceGetUUID", device);
  if (device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  return put_string(uuid, length, device->uuid);
}

MOCK_EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char* name, unsigned length) {
  CHECK("nvmlDeviceGetName", device);
  if (device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  return put_string(name, length, device->name);
}

MOCK_EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t* pci) {
  CHECK("nvmlDeviceGetPciInfo_v3", device);
  if (device == NULL || pci == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  memset(pci, 0, sizeof(*pci));
  copy_str(pci->busId, sizeof(pci->busId), device->bus_id);
  unsigned domain = 0, bus = 0, dev = 0, fn = 0;
  if (sscanf(device->bus_id, "%x:%x:%x.%x", &domain, &bus, &dev, &fn) == 4) {
    pci->domain = domain;
    pci->bus = bus;
    pci->device = dev;
    snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%04X:%02X:%02X.%X", domain & 0xffff,
             bus & 0xff, dev & 0xff, fn & 0xf);
  }
  pci->pciDeviceId = 0x233010de;
  return NVML_SUCCESS;
}

MOCK_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) {
  CHECK("nvmlDeviceGetMemoryInfo", device);
  if (device == NULL || memory == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  memory->total = device->memory;
  memory->used = device->memory / 100;
  memory->free = memory->total - memory->used;
  return NVML_SUCCESS;
}

MOCK_EXPORT nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int* major,
                                                            int* minor) {
  CHECK("nvmlDeviceGetCudaComputeCapability", device);
  if (device == NULL || major == NULL || minor == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *major = device->cc_major;
  *minor = device->cc_minor;
  return NVML_SUCCESS;
}

#ifndef MOCK_NVML_NO_ARCH
MOCK_EXPORT nvmlReturn_t nvmlDeviceGetArchitecture(nvmlDevice_t device, unsigned* arch) {
  CHECK("nvmlDeviceGetArchitecture", device);
  if (device == NULL || arch == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  *arch = device->arch;
  return NVML_SUCCESS;
}
#endif
