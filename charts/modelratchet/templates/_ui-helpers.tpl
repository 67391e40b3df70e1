{{/* The dashboard's labels: a name of its own, so the operator's selectors (Deployment, metrics Service,
PodDisruptionBudget, NetworkPolicy) never match its pods. */}}
{{- define "modelratchet.uiSelectorLabels" -}}
app.kubernetes.io/name: {{ include "modelratchet.name" . }}-ui
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "modelratchet.uiLabels" -}}
helm.sh/chart: {{ include "modelratchet.chart" . }}
{{ include "modelratchet.uiSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: ui
app.kubernetes.io/part-of: modelratchet
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
