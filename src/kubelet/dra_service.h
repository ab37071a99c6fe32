#pragma once
// DRAPlugin wire adapters (v1, v1beta1): request -> ClaimRefs -> ClaimPreparer -> response.
//
// Promises: every requested claim UID gets a response entry (a missing preparer result becomes a
// per-claim error); results for UIDs that were not requested are dropped; per-claim failures go
// into the per-claim `error` field; only malformed requests (a claim without UID) or a throwing
// preparer become gRPC errors; an empty request is answered with an empty response without calling
// the preparer. v1beta1 drops Device.share_id. Requests and responses are logged at verbosity 6,
// one info line per non-empty call.

#include <grpcpp/impl/service_type.h>

#include <memory>

#include "accel_dra/kubelet/kubelet_client.h"
#include "accel_dra/model/claim.h"

namespace accel_dra::kubelet {

std::unique_ptr<grpc::Service> MakeDraService(DraApiVersion api,
                                              std::shared_ptr<model::ClaimPreparer> preparer);

}  // namespace accel_dra::kubelet
