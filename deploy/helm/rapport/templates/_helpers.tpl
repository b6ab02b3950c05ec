{{/*
Names and labels.
*/}}
{{- define "rapport.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rapport.fullname" -}}
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

{{/* "<fullname>-<suffix>", at most 63 characters. Call with (list $ "suffix"). */}}
{{- define "rapport.componentName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "rapport.fullname" $root | trunc (int (sub 62 (len (index . 1))))) (index . 1) | trimSuffix "-" }}
{{- end }}

{{- define "rapport.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rapport.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rapport.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rapport.labels" -}}
helm.sh/chart: {{ include "rapport.chart" . }}
{{ include "rapport.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rapport
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component. Call with (list $ "intake"). */}}
{{- define "rapport.componentLabels" -}}
{{ include "rapport.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "rapport.componentSelectorLabels" -}}
{{ include "rapport.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
The topics each service consumes (event type names and versions, without the prefix), from
files/consumers.yaml, which `python -m rapport.topics consumers` generates from the code.
*/}}
{{- define "rapport.consumes" -}}
{{- .Files.Get "files/consumers.yaml" }}
{{- end }}

{{- define "rapport.serviceNames" -}}
[intake, feedback, analytics, notify]
{{- end }}

{{/* The image reference: digest wins over tag; tag defaults to the chart's appVersion. */}}
{{- define "rapport.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "rapport.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rapport.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The hook Jobs run before the release's own ServiceAccount exists: they get their own. */}}
{{- define "rapport.hookServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- include "rapport.componentName" (list . "hooks") }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Non-secret settings shared by every workload, as a flat map of environment variables. The
services read them from the ConfigMap; the hook Jobs (which run before the ConfigMap exists)
get them inline.
*/}}
{{- define "rapport.configEnv" -}}
{{- $v := .Values }}
{{- $env := dict
  "RAPPORT_ENVIRONMENT" $v.environment
  "RAPPORT_HTTP_HOST" "0.0.0.0"
  "RAPPORT_HTTP_PORT" "8000"
  "RAPPORT_KAFKA_BOOTSTRAP" $v.kafka.bootstrap
  "RAPPORT_KAFKA_SECURITY_PROTOCOL" $v.kafka.securityProtocol
  "RAPPORT_TOPIC_PREFIX" $v.topics.prefix
  "RAPPORT_TOPIC_PARTITIONS" (toString (int64 $v.topics.partitions))
  "RAPPORT_TOPIC_REPLICATION" (toString (int64 $v.topics.replication))
  "RAPPORT_LOG_LEVEL" $v.config.logLevel
  "RAPPORT_LOG_JSON" (toString $v.config.logJson)
  "RAPPORT_MAX_BODY_BYTES" (toString (int64 $v.config.maxBodyBytes))
  "RAPPORT_HTTP_MAX_IN_FLIGHT" (toString (int64 $v.config.httpMaxInFlight))
  "RAPPORT_HTTP_RETRY_AFTER_SECONDS" (toString (int64 $v.config.httpRetryAfterSeconds))
  "RAPPORT_ALLOW_PRIVATE_WEBHOOKS" (toString $v.config.allowPrivateWebhooks)
}}
{{- if $v.config.jwtAudience }}{{ $_ := set $env "RAPPORT_JWT_AUDIENCE" $v.config.jwtAudience }}{{ end }}
{{- if $v.config.jwtIssuer }}{{ $_ := set $env "RAPPORT_JWT_ISSUER" $v.config.jwtIssuer }}{{ end }}
{{- if hasPrefix "SASL_" $v.kafka.securityProtocol }}
{{- $_ := set $env "RAPPORT_KAFKA_SASL_MECHANISM" $v.kafka.sasl.mechanism }}
{{- if $v.kafka.sasl.username }}{{ $_ := set $env "RAPPORT_KAFKA_SASL_USERNAME" $v.kafka.sasl.username }}{{ end }}
{{- end }}
{{- if has $v.kafka.securityProtocol (list "SSL" "SASL_SSL") }}
{{- $_ := set $env "RAPPORT_KAFKA_SSL_CHECK_HOSTNAME" (toString $v.kafka.tls.checkHostname) }}
{{- if $v.kafka.tls.caSecret }}{{ $_ := set $env "RAPPORT_KAFKA_CA_FILE" "/etc/rapport/kafka/ca/ca.crt" }}{{ end }}
{{- if $v.kafka.tls.clientSecret }}
{{- $_ := set $env "RAPPORT_KAFKA_CERT_FILE" "/etc/rapport/kafka/client/tls.crt" }}
{{- $_ := set $env "RAPPORT_KAFKA_KEY_FILE" "/etc/rapport/kafka/client/tls.key" }}
{{- end }}
{{- end }}
{{- range $name, $value := $v.config.extraEnv }}{{ $_ := set $env $name (toString $value) }}{{ end }}
{{- toYaml $env }}
{{- end }}

{{/* A secretKeyRef env entry. Call with (list $ "RAPPORT_X" .Values.secrets.x). */}}
{{- define "rapport.secretEnv" -}}
{{- $root := index . 0 }}
{{- $ref := index . 2 }}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ default $root.Values.secrets.existingSecret $ref.name | required (printf "%s: set secrets.existingSecret or a Secret name for it" (index . 1)) }}
      key: {{ $ref.key | required (printf "%s: the Secret key is required" (index . 1)) }}
{{- end }}

{{/* Kafka credentials from their Secret (SASL only). Call with (list $ $sasl), $sasl being
.Values.kafka.sasl or the topics Job's own credentials. */}}
{{- define "rapport.kafkaSecretEnv" -}}
{{- $root := index . 0 }}
{{- $sasl := index . 1 }}
{{- if hasPrefix "SASL_" $root.Values.kafka.securityProtocol }}
{{- $secret := required "kafka.sasl.existingSecret is required with a SASL securityProtocol" $sasl.existingSecret }}
{{- if and (not $sasl.username) (not $sasl.usernameKey) }}
{{- fail "kafka.sasl: set username (plain) or usernameKey (a key of kafka.sasl.existingSecret)" }}
{{- end }}
{{- if not $sasl.username }}
- name: RAPPORT_KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $sasl.usernameKey }}
{{- end }}
- name: RAPPORT_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ required "kafka.sasl.passwordKey is required" $sasl.passwordKey }}
{{- end }}
{{- end }}

{{/* The Kafka credentials of the topics Job: topics.job.sasl when it names a Secret (a
principal allowed to create topics), else kafka.sasl. */}}
{{- define "rapport.topicsSasl" -}}
{{- $own := .Values.topics.job.sasl }}
{{- if $own.existingSecret }}
{{- toYaml (dict "username" $own.username "existingSecret" $own.existingSecret "usernameKey" $own.usernameKey "passwordKey" (default "password" $own.passwordKey)) }}
{{- else }}
{{- toYaml .Values.kafka.sasl }}
{{- end }}
{{- end }}

{{/* The application secrets every service (and `rapport migrate`) reads. */}}
{{- define "rapport.appSecretEnv" -}}
{{ include "rapport.secretEnv" (list . "RAPPORT_REDIS_URL" .Values.secrets.redisUrl) | trim }}
{{ include "rapport.secretEnv" (list . "RAPPORT_JWT_SECRET" .Values.secrets.jwtSecret) | trim }}
{{ include "rapport.secretEnv" (list . "RAPPORT_PSEUDONYM_KEY" .Values.secrets.pseudonymKey) | trim }}
{{ include "rapport.secretEnv" (list . "RAPPORT_ENCRYPTION_KEY" .Values.secrets.encryptionKey) | trim }}
{{- end }}

{{/* Volumes and mounts for the Kafka CA and client certificate Secrets, plus /tmp. */}}
{{- define "rapport.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.defaults.tmpSizeLimit }}
{{- $tls := .Values.kafka.tls }}
{{- if has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL") }}
{{- if $tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ $tls.caSecret }}
    defaultMode: 0440
    items:
      - key: {{ $tls.caKey }}
        path: ca.crt
{{- end }}
{{- if $tls.clientSecret }}
- name: kafka-client
  secret:
    secretName: {{ $tls.clientSecret }}
    defaultMode: 0440
    items:
      - key: {{ $tls.certKey }}
        path: tls.crt
      - key: {{ $tls.keyKey }}
        path: tls.key
{{- end }}
{{- end }}
{{- end }}

{{- define "rapport.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- $tls := .Values.kafka.tls }}
{{- if has .Values.kafka.securityProtocol (list "SSL" "SASL_SSL") }}
{{- if $tls.caSecret }}
- name: kafka-ca
  mountPath: /etc/rapport/kafka/ca
  readOnly: true
{{- end }}
{{- if $tls.clientSecret }}
- name: kafka-client
  mountPath: /etc/rapport/kafka/client
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{/* Pod-level settings shared by the Deployments and Jobs. */}}
{{- define "rapport.podCommon" -}}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
securityContext:
  {{- toYaml .Values.defaults.podSecurityContext | nindent 2 }}
{{- end }}

{{/* KEDA's kafka scaler names for the SASL mechanisms. */}}
{{- define "rapport.kedaSasl" -}}
{{- $m := .Values.kafka.sasl.mechanism }}
{{- if eq $m "PLAIN" }}plaintext{{ else if eq $m "SCRAM-SHA-256" }}scram_sha256{{ else }}scram_sha512{{ end }}
{{- end }}

{{/* True ("true") when KEDA needs a TriggerAuthentication for Kafka. */}}
{{- define "rapport.kedaNeedsAuth" -}}
{{- $k := .Values.kafka }}
{{- if or (hasPrefix "SASL_" $k.securityProtocol) (and (has $k.securityProtocol (list "SSL" "SASL_SSL")) (or $k.tls.caSecret $k.tls.clientSecret)) }}true{{ end }}
{{- end }}

{{/* Fails rendering on combinations the schema cannot express. */}}
{{- define "rapport.validate" -}}
{{- $consumes := fromYaml (include "rapport.consumes" .) }}
{{- range $name, $svc := .Values.services }}
{{- if and $svc.enabled $svc.keda.enabled }}
{{- if not (index $consumes $name) }}
{{- fail (printf "services.%s.keda: %s consumes no Kafka topic, so there is no consumer lag to scale on; use services.%s.autoscaling" $name $name $name) }}
{{- end }}
{{- if $svc.autoscaling.enabled }}
{{- fail (printf "services.%s: enable either autoscaling (CPU HPA) or keda (which creates its own HPA), not both" $name) }}
{{- end }}
{{- if gt (int $svc.keda.maxReplicaCount) (int $.Values.topics.partitions) }}
{{- fail (printf "services.%s.keda.maxReplicaCount (%d) exceeds topics.partitions (%d): replicas beyond the partition count get no partition and sit idle" $name (int $svc.keda.maxReplicaCount) (int $.Values.topics.partitions)) }}
{{- end }}
{{- if gt (int $svc.keda.minReplicaCount) (int $svc.keda.maxReplicaCount) }}
{{- fail (printf "services.%s.keda: minReplicaCount exceeds maxReplicaCount" $name) }}
{{- end }}
{{- end }}
{{- if and $svc.enabled $svc.autoscaling.enabled (gt (int $svc.autoscaling.minReplicas) (int $svc.autoscaling.maxReplicas)) }}
{{- fail (printf "services.%s.autoscaling: minReplicas exceeds maxReplicas" $name) }}
{{- end }}
{{- end }}
{{- if and .Values.topics.minInsyncReplicas (gt (int .Values.topics.minInsyncReplicas) (int .Values.topics.replication)) }}
{{- fail "topics.minInsyncReplicas exceeds topics.replication: producers with acks=all could never write" }}
{{- end }}
{{- if le (int .Values.defaults.terminationGracePeriodSeconds) (add 20 (int .Values.defaults.preStopSleepSeconds)) }}
{{- fail "defaults.terminationGracePeriodSeconds must exceed preStopSleepSeconds + 20 (uvicorn's graceful shutdown)" }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.hosts) }}
{{- fail "ingress.enabled needs at least one host in ingress.hosts" }}
{{- end }}
{{- end }}

{{/* NetworkPolicy egress rules: TCP ports to peers (any peer when `to` is empty). */}}
{{- define "rapport.egressRule" -}}
{{- $rule := index . 0 }}
- ports:
    {{- range $rule.ports }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
  {{- with $rule.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- define "rapport.dnsRule" -}}
{{- $dns := . }}
- ports:
    {{- range $dns.ports }}
    - protocol: UDP
      port: {{ . }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
  {{- with $dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* The non-secret settings as an env list (for the hook Jobs). Call with (list $ $sasl
$kafka): the SASL user name is the one of the credentials the Job uses; without $kafka (a Job
that does not talk to Kafka) the Kafka security settings are left out. */}}
{{- define "rapport.configEnvList" -}}
{{- $root := index . 0 }}
{{- $sasl := index . 1 }}
{{- $kafka := index . 2 }}
{{- $env := fromYaml (include "rapport.configEnv" $root) }}
{{- $_ := unset $env "RAPPORT_KAFKA_SASL_USERNAME" }}
{{- if not $kafka }}
{{- range $key := list "RAPPORT_KAFKA_SECURITY_PROTOCOL" "RAPPORT_KAFKA_SASL_MECHANISM" "RAPPORT_KAFKA_CA_FILE" "RAPPORT_KAFKA_CERT_FILE" "RAPPORT_KAFKA_KEY_FILE" "RAPPORT_KAFKA_SSL_CHECK_HOSTNAME" }}
{{- $_ := unset $env $key }}
{{- end }}
{{- end }}
{{- if and $kafka (hasPrefix "SASL_" $root.Values.kafka.securityProtocol) $sasl.username }}
{{- $_ := set $env "RAPPORT_KAFKA_SASL_USERNAME" $sasl.username }}
{{- end }}
{{- range $key, $value := $env }}
- name: {{ $key }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* A pre-install/pre-upgrade hook Job. Call with (dict "root" $ "name" "migrate" "weight" "0"
"job" .Values.migrations "command" (list ...) "env" "<yaml env list>" "sasl" $sasl "kafka" true);
"kafka" mounts the Kafka TLS Secrets. */}}
{{- define "rapport.hookJob" -}}
{{- $root := .root }}
{{- $d := $root.Values.defaults }}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "rapport.componentName" (list $root .name) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "rapport.componentLabels" (list $root .name) | nindent 4 }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: {{ .weight | quote }}
    # Keep the last run (and its logs) until the next install/upgrade replaces it.
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  backoffLimit: {{ .job.backoffLimit }}
  activeDeadlineSeconds: {{ .job.activeDeadlineSeconds }}
  ttlSecondsAfterFinished: {{ .job.ttlSecondsAfterFinished }}
  template:
    metadata:
      labels:
        {{- include "rapport.componentLabels" (list $root .name) | nindent 8 }}
        {{- with $d.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $d.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      restartPolicy: Never
      serviceAccountName: {{ include "rapport.hookServiceAccountName" $root }}
      {{- include "rapport.podCommon" $root | nindent 6 }}
      {{- with $d.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $d.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $d.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $d.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .name }}
          image: {{ include "rapport.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command:
            {{- toYaml .command | nindent 12 }}
          env:
            {{- include "rapport.configEnvList" (list $root .sasl .kafka) | trim | nindent 12 }}
            {{- with .env | trim }}
            {{- . | nindent 12 }}
            {{- end }}
          resources:
            {{- toYaml .job.resources | nindent 12 }}
          securityContext:
            {{- toYaml $d.securityContext | nindent 12 }}
          volumeMounts:
            {{- if .kafka }}
            {{- include "rapport.volumeMounts" $root | trim | nindent 12 }}
            {{- else }}
            - name: tmp
              mountPath: /tmp
            {{- end }}
      volumes:
        {{- if .kafka }}
        {{- include "rapport.volumes" $root | trim | nindent 8 }}
        {{- else }}
        - name: tmp
          emptyDir:
            sizeLimit: {{ $d.tmpSizeLimit }}
        {{- end }}
{{- end }}
