"""The DigitOps stack without Docker: MLflow, the trainer, TF Serving and the web UI as local
processes on the same ports as docker-compose.yml. `make up` runs `python -m devstack up`.
"""
