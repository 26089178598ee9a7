{{/* Names and labels shared by every template. */}}

{{- define "ringleader.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-ringleader, or the release name alone when it already says ringleader. */}}
{{- define "ringleader.fullname" -}}
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

{{- define "ringleader.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ringleader.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ringleader
{{- end }}

{{/* Immutable once a Deployment exists: never add to these. */}}
{{- define "ringleader.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ringleader.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "ringleader.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ringleader.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ringleader.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* More than one replica: kopf peering decides which one works. */}}
{{- define "ringleader.peering" -}}
{{- if gt (int .Values.replicas) 1 }}true{{ end }}
{{- end }}

{{- define "ringleader.peeringName" -}}
{{- default (include "ringleader.fullname" .) .Values.peering.name }}
{{- end }}

{{- define "ringleader.webhookService" -}}
{{- printf "%s-webhook" (include "ringleader.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ringleader.webhookSecret" -}}
{{- printf "%s-webhook-tls" (include "ringleader.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The webhook's serving certificate and its CA, base64 (crt, key, ca): the Secret's of an earlier
release when there is one, so that an upgrade keeps the certificate the running operator serves;
else a new CA (10 years) and a certificate for the webhook Service's DNS names. Include it once
per render: each call without a Secret makes a new CA.
*/}}
{{- define "ringleader.webhookTLS" -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "ringleader.webhookSecret" .) }}
{{- if and $secret (index ($secret.data | default dict) "ca.crt") }}
crt: {{ index $secret.data "tls.crt" }}
key: {{ index $secret.data "tls.key" }}
ca: {{ index $secret.data "ca.crt" }}
{{- else }}
{{- $service := include "ringleader.webhookService" . }}
{{- $ns := .Release.Namespace }}
{{- $names := list $service (printf "%s.%s" $service $ns) (printf "%s.%s.svc" $service $ns) }}
{{- $ca := genCA (printf "%s-ca" $service) 3650 }}
{{- $cert := genSignedCert (printf "%s.%s.svc" $service $ns) nil $names 3650 $ca }}
crt: {{ $cert.Cert | b64enc }}
key: {{ $cert.Key | b64enc }}
ca: {{ $ca.Cert | b64enc }}
{{- end }}
{{- end }}
