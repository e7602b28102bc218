"""llama.cpp's own server (the code of `llama-server`, from the prebuilt PyPI wheel xllamacpp: no
compiler needed) on 127.0.0.1, serving a GGUF model until SIGTERM or SIGINT.

    python3 server.py MODEL.gguf PORT CONTEXT ALIAS THREADS

Used by scripts/local-llm.sh (the quickstart's server) and scripts/conformance.sh. Unlike
llama-cpp-python's Python server, it answers a prompt over the context with HTTP 400
`exceed_context_size_error`, takes `json_schema` response formats (turned into a grammar), and
reports the model file and its size under `/v1/models`.
"""

import signal
import sys

import xllamacpp as xlc

model, port, ctx, alias, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
# Blocked before the server's threads start, so that they inherit the mask and the signal
# reaches the sigwait below.
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
params = xlc.CommonParams()
params.model.path = model
# A set of names in this llama.cpp (a bare string would be taken as a set of its letters).
params.model_alias = {alias}
params.hostnames = ["127.0.0.1"]
params.port = port
params.n_ctx = ctx
params.n_parallel = 1
# The GGUF carries no chat template. llama.cpp's built-in "gemma" template (not a Jinja one:
# with use_jinja the name itself would be taken for the template) folds the system message
# into the first user turn.
params.use_jinja = False
params.chat_template = "gemma"
params.cpuparams.n_threads = threads
params.cpuparams_batch.n_threads = threads
server = xlc.Server(params)
print(f"llama-server listening at {server.listening_address}", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
