{{/*
The operator's permissions, in one place so the ClusterRole (cluster-wide mode) and the Roles
(one per watched namespace) cannot drift apart. Each rule names what in the operator needs it;
the chart's integration test runs the operator with exactly these and checks what is refused.
*/}}

{{/* Rules on namespaced resources: granted cluster-wide or per watched namespace. */}}
{{- define "ringleader.rbac.namespacedRules" -}}
# The jobs: watched (kopf), deleted after ttlSecondsAfterFinished.
- apiGroups: ["ringleader.dev"]
  resources: ["distributedtrainingjobs"]
  verbs: ["list", "watch", "delete"]
# Status is written through its subresource only; the operator never changes a job's spec.
- apiGroups: ["ringleader.dev"]
  resources: ["distributedtrainingjobs/status"]
  verbs: ["patch"]
# Children carry ownerReferences with blockOwnerDeletion, which clusters with the
# OwnerReferencesPermissionEnforcement admission plugin only allow to who may update this.
- apiGroups: ["ringleader.dev"]
  resources: ["distributedtrainingjobs/finalizers"]
  verbs: ["update"]
# Worker and rendezvous pods: created, replaced on failure, removed on scale-down; read when a
# create finds the name taken, to tell the job's own pod from another's.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete"]
# The headless Services and checkpoint claims: created once, removed by garbage collection; read
# as pods are.
- apiGroups: [""]
  resources: ["services", "persistentvolumeclaims"]
  verbs: ["get", "list", "watch", "create"]
# Gang jobs (spec.scheduling.gang): the job's PodGroup for Volcano or the coscheduling plugin,
# created and kept up to date, watched for why its gang waits; removed by garbage collection.
- apiGroups: ["scheduling.volcano.sh", "scheduling.x-k8s.io"]
  resources: ["podgroups"]
  verbs: ["list", "watch", "create", "patch"]
# Jobs queued with Kueue (label kueue.x-k8s.io/queue-name): the job's Workload, created and
# watched for Kueue's admission; its status written to give an evicted job's quota back and to
# mark it Finished. Removed by garbage collection.
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloads"]
  verbs: ["list", "watch", "create"]
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["workloads/status"]
  verbs: ["patch"]
# Events on jobs (events.k8s.io) and kopf's own warnings (core).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]  # patch: a repeated event counts up (eventseries.py)
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- if include "ringleader.peering" . }}
{{- if .Values.watchNamespaces }}
# kopf peering between replicas: one KopfPeering per watched namespace.
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch"]
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  resourceNames: [{{ include "ringleader.peeringName" . | quote }}]
  verbs: ["get", "patch"]
{{- end }}
{{- end }}
{{- end }}

{{/* Rules on cluster-scoped resources: always a ClusterRole. */}}
{{- define "ringleader.rbac.clusterRules" -}}
# kopf discovers served resources and notices CRDs coming and going.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
# The node of a pod stuck terminating: a NotReady or vanished node means its kubelet will never
# finish the deletion, so the operator force-deletes the pod (lostnodes.py); read one at a time.
# And node deletions, watched: the pods of a deleted node are force-deleted at once.
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get", "list", "watch"]
# Jobs queued with Kueue: the value of a job's PriorityClass goes into its Workload, and the
# ResourceFlavors it is admitted to say where its pods go (node labels, tolerations).
- apiGroups: ["scheduling.k8s.io"]
  resources: ["priorityclasses"]
  verbs: ["get"]
- apiGroups: ["kueue.x-k8s.io"]
  resources: ["resourceflavors"]
  verbs: ["get"]
{{- if .Values.watchNamespaces }}
# kopf follows the watched namespaces being created and deleted (names only).
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- else if include "ringleader.peering" . }}
# kopf peering between replicas: one ClusterKopfPeering.
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["list", "watch"]
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  resourceNames: [{{ include "ringleader.peeringName" . | quote }}]
  verbs: ["get", "patch"]
{{- end }}
{{- end }}
