FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Tesseract OCR with English and Chinese language data, for scanned PDF pages and images.
RUN apt-get update && apt-get install -y --no-install-recommends tesseract-ocr \
    tesseract-ocr-eng tesseract-ocr-chi-sim tesseract-ocr-chi-tra \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# GNU gettext's msgfmt compiles the interface's translations below.
RUN apt-get update && apt-get install -y --no-install-recommends gettext \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml requirements.lock README.md ./
COPY rag_site rag_site
COPY knowledge knowledge
COPY retrieval retrieval
COPY generation generation
RUN pip install --no-cache-dir -c requirements.lock .
COPY . .
# The translation catalogues (.mo files are built, never committed; no secret is written here).
RUN SECRET_KEY=build RAG_DATA_DIR=/tmp/build python manage.py build_catalogues -v 0 \
    && rm -rf /tmp/build
RUN useradd --create-home app && mkdir -p /data && chown app /data
USER app
EXPOSE 8000
CMD ["gunicorn", "rag_site.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--timeout", "120"]
