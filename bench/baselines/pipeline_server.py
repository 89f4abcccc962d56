"""Baseline: the model server a user writes by hand, FastAPI calling a Transformers pipeline per request.

Each request is answered on its own: FastAPI runs the (synchronous) handler in its
thread pool, and the handler calls the pipeline on the request's texts. Nothing in
it comes from bertkit. Served on uvicorn with the same settings as `bertkit serve`
(uvloop and httptools when installed, no access log).

    python bench/baselines/pipeline_server.py --task classification --model DIR --port 8001

Tasks: classification (`pipeline("text-classification")`, every class's score),
ner (`pipeline("token-classification", aggregation_strategy="first")`) and embedding
(`SentenceTransformer.encode`, the library's own API: no pipeline embeds sentences).
POST /predict with {"texts": [...]}; GET /health.
"""

import argparse

from fastapi import FastAPI
from pydantic import BaseModel


class Texts(BaseModel):
    texts: list[str]


def build(task: str, model: str) -> FastAPI:
    app = FastAPI()
    if task == "embedding":
        from sentence_transformers import SentenceTransformer

        encoder = SentenceTransformer(model, device="cpu")

        def predict(body: Texts) -> dict:
            vectors = encoder.encode(body.texts, convert_to_numpy=True, show_progress_bar=False)
            return {
                "predictions": [
                    {"text": t, "embedding": v.tolist()} for t, v in zip(body.texts, vectors, strict=True)
                ]
            }

    else:
        from transformers import pipeline

        if task == "ner":
            tagger = pipeline("token-classification", model=model, aggregation_strategy="first", device="cpu")

            def predict(body: Texts) -> dict:
                found = tagger(body.texts)
                entities = [
                    [{**e, "score": float(e["score"])} for e in row] for row in found
                ]  # numpy floats do not serialise
                return {
                    "predictions": [
                        {"text": t, "entities": e} for t, e in zip(body.texts, entities, strict=True)
                    ]
                }

        else:
            classifier = pipeline("text-classification", model=model, device="cpu")

            def predict(body: Texts) -> dict:
                scores = classifier(body.texts, top_k=None, truncation=True)
                return {
                    "predictions": [{"text": t, "scores": s} for t, s in zip(body.texts, scores, strict=True)]
                }

    app.post("/predict")(predict)
    app.get("/health")(lambda: {"status": "ready"})
    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("classification", "ner", "embedding"), default="classification")
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        build(args.task, args.model), host="127.0.0.1", port=args.port, access_log=False, log_level="warning"
    )


if __name__ == "__main__":
    main()
