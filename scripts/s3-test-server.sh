# scripts/s3-test-server.sh is sourced by the benchmark scripts: start_s3 DIR
# starts the S3 test server (versitygw, installed under .tools/ by
# scripts/test) on loopback with its data in DIR, unless
# PARKING_TEST_S3_ENDPOINT already names one, and exports the variables the
# benchmarks and the SDK read. The caller kills the pids in s3_pids.
s3_pids=()
start_s3() {
	local dir=$1 versitygw port
	if [[ -z ${PARKING_TEST_S3_ENDPOINT:-} ]]; then
		versitygw=$(ls "$root"/.tools/versitygw-*/bin/versitygw 2>/dev/null | tail -1)
		[[ -x $versitygw ]] || { echo "versitygw not installed: run scripts/test once" >&2; return 1; }
		port=$((20000 + RANDOM % 40000))
		export PARKING_TEST_S3_ACCESS_KEY=bench$RANDOM PARKING_TEST_S3_SECRET_KEY=secret$RANDOM$RANDOM
		mkdir -p "$dir"
		"$versitygw" --port "127.0.0.1:$port" --access "$PARKING_TEST_S3_ACCESS_KEY" --secret "$PARKING_TEST_S3_SECRET_KEY" \
			--health /health --quiet posix "$dir" >"$dir.log" 2>&1 &
		s3_pids+=($!)
		export PARKING_TEST_S3_ENDPOINT=http://127.0.0.1:$port
		for _ in $(seq 100); do
			(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
			sleep 0.1
		done
	fi
	# The stores read the SDK's standard variables, as the loader does.
	export AWS_ENDPOINT_URL_S3=$PARKING_TEST_S3_ENDPOINT AWS_ACCESS_KEY_ID=$PARKING_TEST_S3_ACCESS_KEY
	export AWS_SECRET_ACCESS_KEY=$PARKING_TEST_S3_SECRET_KEY AWS_REGION=us-east-1 PARKING_S3_PATH_STYLE=true
	export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
}
