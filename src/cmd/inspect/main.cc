// accel-dra-inspect: the static in-pod tool (libc + libstdc++ only). See inspect.h.
#include "accel_dra/probe/inspect.h"

int main(int argc, char** argv) { return accel_dra::probe::InspectMain(argc, argv); }
