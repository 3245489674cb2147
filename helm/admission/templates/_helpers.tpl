{{/*
Expand the name of the chart.
*/}}
{{- define "admission.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "admission.fullname" -}}
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

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "admission.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "admission.labels" -}}
helm.sh/chart: {{ include "admission.chart" . }}
{{ include "admission.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tickets
{{- end }}

{{/*
Selector labels
*/}}
{{- define "admission.selectorLabels" -}}
app.kubernetes.io/name: {{ include "admission.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "admission.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "admission.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository and an immutable tag, both required.
*/}}
{{- define "admission.image" -}}
{{- $repo := required "image.repository is required" .Values.image.repository }}
{{- $tag := required "image.tag is required (an immutable git short sha)" .Values.image.tag }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}

{{/*
The fewest replicas that run: what the PodDisruptionBudget protects.
*/}}
{{- define "admission.minReplicas" -}}
{{- if or .Values.keda.enabled .Values.autoscaling.enabled }}
{{- .Values.autoscaling.minReplicas }}
{{- else }}
{{- .Values.replicaCount }}
{{- end }}
{{- end }}

{{/*
Hook annotations shared by the database Jobs and what they need (Helm
pre-install/pre-upgrade, ArgoCD PreSync; the weight orders them).
Usage: include "admission.hookAnnotations" (dict "weight" -20)
*/}}
{{- define "admission.hookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: before-hook-creation
argocd.argoproj.io/hook: PreSync
argocd.argoproj.io/sync-wave: {{ .weight | quote }}
argocd.argoproj.io/hook-delete-policy: BeforeHookCreation
{{- end }}

{{/*
The container security context of the database Jobs, as the given uid
(10001 for the mysql client, 65532 for the app image).
*/}}
{{- define "admission.jobContainerSecurity" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
`kid:path` pairs, comma-separated, as TOKEN_KEYS and IDENTITY_KEYS take them.
Usage: include "admission.keySpecs" (dict "keys" .Values.tokenKeys.keys "dir" "/etc/...")
*/}}
{{- define "admission.keySpecs" -}}
{{- $dir := .dir }}
{{- $specs := list }}
{{- range .keys }}
{{- $specs = append $specs (printf "%s:%s/%s" .kid $dir .file) }}
{{- end }}
{{- join "," $specs }}
{{- end }}

{{/*
TLS to Aurora. The CA bundle's folder (when database.tls.caSecret is set),
the query of the app's database URLs, and the mysql client's flags.
*/}}
{{- define "admission.dbCaDir" -}}
/etc/admission/db-ca
{{- end }}

{{- define "admission.dbUrlTls" -}}
ssl-mode={{ .Values.database.tls.mode }}
{{- if eq .Values.database.tls.mode "VERIFY_IDENTITY" }}&ssl-ca={{ include "admission.dbCaDir" . }}/ca.pem{{ end }}
{{- end }}

{{- define "admission.dbClientTls" -}}
--ssl-mode={{ .Values.database.tls.mode }}
{{- if eq .Values.database.tls.mode "VERIFY_IDENTITY" }} --ssl-ca={{ include "admission.dbCaDir" . }}/ca.pem{{ end }}
{{- end }}

{{/*
The CA bundle's volume and mount, for the pods that talk to Aurora.
Usage: include "admission.dbCaVolume" . / include "admission.dbCaMount" .
*/}}
{{- define "admission.dbCaVolume" -}}
{{- if .Values.database.tls.caSecret }}
- name: db-ca
  secret:
    secretName: {{ .Values.database.tls.caSecret }}
    defaultMode: 0444
    items:
      - key: ca.pem
        path: ca.pem
{{- end }}
{{- end }}

{{- define "admission.dbCaMount" -}}
{{- if .Values.database.tls.caSecret }}
- name: db-ca
  mountPath: {{ include "admission.dbCaDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
Rules across values that values.schema.json cannot express; rendering
fails with the reason.
*/}}
{{- define "admission.validate" -}}
{{- $a := .Values.autoscaling }}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) }}
{{- fail (printf "autoscaling.minReplicas (%d) is above autoscaling.maxReplicas (%d)" (int $a.minReplicas) (int $a.maxReplicas)) }}
{{- end }}
{{- /* The app needs up to 10 s after SIGTERM to close sockets and finish requests. */}}
{{- if le (int .Values.terminationGracePeriodSeconds) (add (int .Values.preStopSleepSeconds) 10) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds (%d) + the app's 10 s shutdown" (int .Values.terminationGracePeriodSeconds) (int .Values.preStopSleepSeconds)) }}
{{- end }}
{{- $kids := dict }}
{{- range .Values.tokenKeys.keys }}
{{- if hasKey $kids .kid }}
{{- fail (printf "tokenKeys.keys: kid %q appears twice" .kid) }}
{{- end }}
{{- $_ := set $kids .kid true }}
{{- end }}
{{- if and (eq .Values.database.tls.mode "VERIFY_IDENTITY") (not .Values.database.tls.caSecret) }}
{{- fail "database.tls.mode VERIFY_IDENTITY needs database.tls.caSecret (the RDS CA bundle) to check the certificate against" }}
{{- end }}
{{- /* What only exists after the first `terraform apply` is committed with
`xxxx` in it, the certificate as the all-zero id (docs/deploy.md, step 4):
never render it into a cluster. */}}
{{- $pending := list }}
{{- range .Values.redis.clusterNodes }}
{{- if contains "xxxxxx" . }}
{{- $pending = append $pending "redis.clusterNodes (terraform output cache_endpoint)" }}
{{- end }}
{{- end }}
{{- if contains "xxxxxx" .Values.database.host }}
{{- $pending = append $pending "database.host (terraform output aurora_writer_endpoint)" }}
{{- end }}
{{- if contains "xxxxxx" .Values.database.readerHost }}
{{- $pending = append $pending "database.readerHost (terraform output aurora_reader_endpoint)" }}
{{- end }}
{{- if hasSuffix "certificate/00000000-0000-0000-0000-000000000000" .Values.ingress.certificateArn }}
{{- $pending = append $pending "ingress.certificateArn (terraform output certificate_arn)" }}
{{- end }}
{{- if $pending }}
{{- fail (printf "placeholders left from before the first terraform apply: %s; set them as docs/deploy.md (step 4) says" (join ", " $pending)) }}
{{- end }}
{{- end }}

{{/*
checkov findings that do not apply, each with its reason (checkov reads
these annotations; `cargo xtask test` fails on any other finding).
Usage: include "admission.checkovSkips" (dict "envSecrets" true)
*/}}
{{- define "admission.checkovSkips" -}}
checkov.io/skip1: CKV_K8S_43=Images are pinned by immutable tags (ECR tag immutability, git sha tags; the bootstrap image a patch release); a digest may be given in the image value
checkov.io/skip2: CKV_K8S_15=Tags never move, so IfNotPresent always runs the pinned image and spares a registry round trip per pod during a scale-out
{{- if .envSecrets }}
checkov.io/skip3: CKV_K8S_35=The admission binary reads ADMIN_TOKEN and DATABASE_URL(S) from its environment only (app/src/config.rs); the signing keys are files
{{- end }}
{{- end }}
