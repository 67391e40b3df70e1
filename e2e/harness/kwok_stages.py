"""kwok's pod lifecycle for the local cluster, with pods that really serve left unready for the supervisor.

kwok's default ("fast") pod stages make every scheduled pod Running and Ready at once. Pods labelled
`modelratchet.io/serve: "true"` run a real process (e2e/harness/supervisor.py), so for them kwok only assigns
the pod IP and the Running phase with Ready=False; the supervisor sets Ready once the process answers its
readiness probe, and back to False when it stops answering or exits. Other pods keep kwok's behaviour.

Passing any pod Stage replaces all of kwok's default pod stages, so the three defaults are copied here verbatim
from sigs.k8s.io/kwok v0.7.0 (kustomize/stage/pod/fast/*.yaml); `pod_stages()` derives the two variants.
"""

from __future__ import annotations

SERVE_LABEL = "modelratchet.io/serve"

KWOK_POD_READY = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.podIP'
      operator: 'DoesNotExist'
  next:
    statusTemplate: |
      {{ $now := Now }}

      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: ContainersReady
      {{ range .spec.readinessGates }}
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: {{ .conditionType | Quote }}
      {{ end }}

      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}

      initContainerStatuses:
      {{ range .spec.initContainers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        {{ if eq .restartPolicy "Always" }}
        started: true
        state:
          running:
            startedAt: {{ $now | Quote }}
        {{ else }}
        state:
          terminated:
            exitCode: 0
            finishedAt: {{ $now | Quote }}
            reason: Completed
            startedAt: {{ $now | Quote }}
        {{ end }}
      {{ end }}

      hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
      podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
      phase: Running
      startTime: {{ $now | Quote }}
"""  # noqa: E501  (verbatim upstream text)

KWOK_POD_COMPLETE = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-complete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.metadata.ownerReferences.[].kind'
      operator: 'In'
      values:
      - 'Job'
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $root := . }}
      containerStatuses:
      {{ range $index, $item := .spec.containers }}
      {{ $origin := index $root.status.containerStatuses $index }}
      - image: {{ $item.image | Quote }}
        name: {{ $item.name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: 0
            finishedAt: {{ $now | Quote }}
            reason: Completed
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: Succeeded
"""

KWOK_POD_DELETE = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'Exists'
  next:
    finalizers:
      empty: true
    delete: true
"""


_NO_IP = """\
    - key: '.status.podIP'
      operator: 'DoesNotExist'
"""
_READY_CONDITIONS = ('status: "True"\n        type: Ready', 'status: "True"\n        type: ContainersReady')
_CONTAINER_READY = "name: {{ .name | Quote }}\n        ready: true"


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) < 1:
        raise ValueError(f"kwok's pod-ready stage changed: {old!r} not found")
    return text.replace(old, new, 1)


def pod_stages() -> str:
    """kwok's pod stages (a multi-document YAML) for the local cluster's config file."""
    plain = _replace_once(KWOK_POD_READY, _NO_IP, _NO_IP + f"    - key: '.metadata.labels[\"{SERVE_LABEL}\"]'\n"
                          "      operator: 'DoesNotExist'\n")
    serve = _replace_once(KWOK_POD_READY, "name: pod-ready", "name: pod-serve")
    serve = _replace_once(serve, "  selector:\n", f"  selector:\n    matchLabels:\n      {SERVE_LABEL}: \"true\"\n")
    for condition in _READY_CONDITIONS:
        serve = _replace_once(serve, condition, condition.replace('"True"', '"False"'))
    # The first `.name ... ready: true` is in the range over .spec.containers (init containers come later).
    serve = _replace_once(serve, _CONTAINER_READY, _CONTAINER_READY.replace("true", "false"))
    return "---\n".join((plain, serve, KWOK_POD_COMPLETE, KWOK_POD_DELETE))
