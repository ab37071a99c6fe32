{{/* Names and labels shared by the templates. */}}
{{- define "accel-dra.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "accel-dra.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "accel-dra.selectorLabels" -}}
app.kubernetes.io/name: {{ include "accel-dra.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "accel-dra.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "accel-dra.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "accel-dra.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "accel-dra.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "accel-dra.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The port of the plugin's HTTP endpoint (metrics, /healthz, /readyz). With hostNetwork, the old and
the new plugin pod of a rolling update (maxSurge: 1) share the node's network namespace and its
host ports (the scheduler would not even place the new pod beside the old one, and two processes
cannot bind one port): the port alternates between the value and the value+1 with the release
revision, so that consecutive revisions never collide. Without hostNetwork every pod has its own
network namespace and the value is used as is. Usage: include "accel-dra.port" (list . .Values.metrics.port)
*/}}
{{- define "accel-dra.port" -}}
{{- $ctx := index . 0 -}}
{{- $port := int (index . 1) -}}
{{- if $ctx.Values.hostNetwork -}}
{{- add $port (mod (int $ctx.Release.Revision) 2) -}}
{{- else -}}
{{- $port -}}
{{- end -}}
{{- end -}}
