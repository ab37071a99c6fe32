"""Smoke tests of the local control plane itself (hack/local-cluster/up.sh): DRA APIs served,
static Nodes, RBAC, and DRA allocation by the real kube-scheduler. No accel-dra code involved."""

import secrets

DRIVER = "smoke.accel-dra.dev"
DRA_RESOURCES = {"resourceslices", "resourceclaims", "resourceclaimtemplates", "deviceclasses"}


def test_resource_api_v1_served(cluster, kubectl):
    status, body = cluster.request("/apis/resource.k8s.io/v1")
    assert status == 200, body
    names = {r["name"] for r in body["resources"]}
    assert DRA_RESOURCES <= names, f"resource.k8s.io/v1 serves {sorted(names)}"
    assert "resourceclaims/status" in names
    # The beta versions are on unless up.sh ran with ACCEL_DRA_RUNTIME_CONFIG="".
    for version in ("v1beta1", "v1beta2"):
        if f"resource.k8s.io/{version}=true" in cluster.env.get("RUNTIME_CONFIG", ""):
            status, body = cluster.request(f"/apis/resource.k8s.io/{version}")
            assert status == 200, f"resource.k8s.io/{version}: {status} {body}"
            assert DRA_RESOURCES <= {r["name"] for r in body["resources"]}
    server = kubectl.json("version")["serverVersion"]["gitVersion"]
    assert server == f"v{cluster.env['K8S_VERSION']}"


def test_static_node_is_ready(cluster, kubectl, make_node):
    name = make_node(f"smoke-node-{secrets.token_hex(3)}")
    make_node(name)  # idempotent
    node = kubectl.json("get", "node", name)
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == name
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True", node["status"]["conditions"]
    assert node["status"]["allocatable"]["pods"] == "110"
    assert {"cpu", "memory", "pods"} <= node["status"]["capacity"].keys()
    info = node["status"]["nodeInfo"]
    assert info["containerRuntimeVersion"] == "containerd://2.1.4"
    assert info["kubeletVersion"] == f"v{cluster.env['K8S_VERSION']}"
    assert not any(t["key"] == "node.kubernetes.io/not-ready" for t in node["spec"].get("taints", []))


def test_tokens(cluster, kubectl):
    # The unprivileged user is authenticated but has no RBAC binding: a real 403.
    status, body = cluster.request("/apis/resource.k8s.io/v1/resourceslices",
                                   token=cluster.unprivileged_token)
    assert status == 403, body
    p = kubectl("get", "resourceslices", kubeconfig=cluster.kubeconfig_unprivileged, check=False)
    assert p.returncode != 0 and "forbidden" in p.stderr.lower(), p.stderr
    # The node token authenticates as system:node:<node> in system:nodes.
    who = kubectl.json("auth", "whoami", kubeconfig=cluster.node_kubeconfig)["status"]["userInfo"]
    assert who["username"] == f"system:node:{cluster.node_name}"
    assert "system:nodes" in who["groups"]
    # The admin kubeconfig verifies the server against the run's CA (no insecure-skip-tls-verify).
    assert "insecure" not in open(cluster.kubeconfig).read()


def test_scheduler_allocates_dra_claim(kubectl, make_node, apply, namespace, wait_for):
    suffix = secrets.token_hex(3)
    node = make_node(f"smoke-dra-{suffix}")
    device_class = f"smoke-{suffix}.accel-dra.dev"
    apply(f"""
apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata:
  name: smoke-{suffix}
spec:
  driver: {DRIVER}
  nodeName: {node}
  pool: {{name: {node}, generation: 1, resourceSliceCount: 1}}
  devices:
  - name: acc-0
    attributes:
      model: {{string: smoke-1000}}
      index: {{int: 0}}
    capacity:
      memory: {{value: 16Gi}}
---
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata:
  name: {device_class}
spec:
  selectors:
  - cel:
      expression: device.driver == "{DRIVER}"
""")
    apply(f"""
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata:
  name: acc
spec:
  spec:
    devices:
      requests:
      - name: acc
        exactly:
          deviceClassName: {device_class}
          selectors:
          - cel:
              expression: >-
                device.attributes["{DRIVER}"].model == "smoke-1000" &&
                device.capacity["{DRIVER}"].memory.compareTo(quantity("8Gi")) >= 0
""")
    pod = """
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 0
  resourceClaims:
  - name: acc
    resourceClaimTemplateName: acc
  containers:
  - name: c
    image: registry.k8s.io/pause:3.10
    resources:
      claims:
      - name: acc
"""
    apply(pod.format(name="smoke-0"))

    # kube-controller-manager's resourceclaim controller creates the claim from the template...
    claim_name = wait_for(
        lambda: (kubectl.json("get", "pod", "smoke-0", "-n", namespace)["status"]
                 .get("resourceClaimStatuses", [{}])[0].get("resourceClaimName")),
        30, "the resourceclaim controller to create the pod's ResourceClaim")
    # ...and kube-scheduler allocates the device with CEL and binds the pod to the node.
    claim = wait_for(
        lambda: (c := kubectl.json("get", "resourceclaim", claim_name, "-n", namespace))
        ["status"].get("allocation") and c,
        60, f"kube-scheduler to allocate ResourceClaim {claim_name}")
    results = claim["status"]["allocation"]["devices"]["results"]
    assert len(results) == 1, results
    want = {"request": "acc", "driver": DRIVER, "pool": node, "device": "acc-0"}
    assert {k: results[0].get(k) for k in want} == want, results
    assert [r["name"] for r in claim["status"].get("reservedFor", [])] == ["smoke-0"]
    node_name = wait_for(
        lambda: kubectl.json("get", "pod", "smoke-0", "-n", namespace)["spec"].get("nodeName"),
        30, "pod smoke-0 to be bound")
    assert node_name == node

    # The only device is taken: a second pod stays unschedulable.
    apply(pod.format(name="smoke-1"))

    def unschedulable():
        conds = kubectl.json("get", "pod", "smoke-1", "-n", namespace)["status"].get("conditions", [])
        return any(c["type"] == "PodScheduled" and c["status"] == "False"
                   and c.get("reason") == "Unschedulable" for c in conds)

    wait_for(unschedulable, 30, "pod smoke-1 to be reported Unschedulable")
    assert not kubectl.json("get", "pod", "smoke-1", "-n", namespace)["spec"].get("nodeName")
