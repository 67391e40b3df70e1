{{/* Chart name, overridable. */}}
{{- define "modelratchet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name; the release name alone when it already contains the chart name. */}}
{{- define "modelratchet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "modelratchet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modelratchet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelratchet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "modelratchet.labels" -}}
helm.sh/chart: {{ include "modelratchet.chart" . }}
{{ include "modelratchet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: modelratchet
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "modelratchet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modelratchet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modelratchet.leaseName" -}}
{{- default (printf "%s-leader" (include "modelratchet.fullname" .)) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "modelratchet.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Namespaces the operator watches, comma-separated. A namespace-scoped install (the default) without a list
watches the release namespace only; a cluster-scoped one without a list watches every namespace.
*/}}
{{- define "modelratchet.watchNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- join "," .Values.watchNamespaces }}
{{- else if eq .Values.rbac.scope "namespace" }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
Namespaced permissions of the operator, shared by the ClusterRole (scope=cluster) and the per-namespace
Roles (scope=namespace). docs/install.md explains each rule.
*/}}
{{- define "modelratchet.rules" -}}
- apiGroups: ["modelratchet.io"]
  resources: ["modelrollouts", "modelbaselines"]
  verbs: ["get", "list", "watch"]
# `record` is not a verb the API server serves: the status admission policy (crds/status-policy.yaml) lets
# only holders of it change status beyond a gate request, which marks this ServiceAccount as the operator.
- apiGroups: ["modelratchet.io"]
  resources: ["modelrollouts/status"]
  verbs: ["update", "patch", "record"]
- apiGroups: ["modelratchet.io"]
  resources: ["modelbaselines/status"]
  verbs: ["patch", "record"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- if .Values.rbac.readSecrets }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
{{- if .Values.rbac.gatewayAPI }}
# trafficRouting.gatewayAPI: weights, header routes and mirrors on the HTTPRoute (server-side apply), and the
# candidate's Service beside its canary Deployment.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "create", "patch", "delete"]
{{- end }}
{{- if .Values.rbac.traefikMirror }}
- apiGroups: ["traefik.io"]
  resources: ["traefikservices"]
  verbs: ["get", "create", "patch", "delete"]
{{- end }}
{{- range .Values.rbac.trainingSuspend }}
# spec.onRollback.suspend: suspend and resume only the training kinds listed in rbac.trainingSuspend.
- apiGroups: [{{ .apiGroup | quote }}]
  resources: {{ toJson .resources }}
  verbs: ["get", "patch"]
{{- end }}
{{- end }}

{{/* Cluster-scoped reads Kopf uses to follow CRDs (always) and namespaces (when watching a list). */}}
{{- define "modelratchet.discoveryRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if include "modelratchet.watchNamespaces" . }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- end }}
