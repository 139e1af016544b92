"""Every sentence the web UI says to a user when something goes wrong, in one place.

Kept together so the wording stays plain and consistent, and tests can match on it.
"""

NOT_JSON = "The request body must be JSON, like {\"image\": \"data:image/png;base64,...\"}."
NOT_AN_OBJECT = "The JSON body must be an object with an \"image\" field."
MISSING_IMAGE = "The \"image\" field is missing: send the drawing as a PNG data URL or base64."
IMAGE_NOT_TEXT = "The \"image\" field must be a string (a PNG data URL or base64), not {kind}."
EMPTY_IMAGE = "The \"image\" field is empty."
DATA_URL_NOT_BASE64 = "The data URL must be base64-encoded (data:image/png;base64,...)."
NOT_BASE64 = "The \"image\" field is not valid base64 text."
NOT_AN_IMAGE = "The \"image\" field does not hold an image that can be read (PNG, JPEG, GIF, BMP)."
DAMAGED_IMAGE = "The image could not be decoded; the file may be damaged or cut short."
IMAGE_TOO_LARGE = "The image is {width}×{height} pixels; the largest side accepted is {limit}."
IMAGE_FAR_TOO_LARGE = "The image claims far too many pixels; the largest side accepted is {limit}."
UNSUPPORTED_MODE = "Images in the {mode} colour space are not supported; send a gray or RGB image."
PNG_BAD_CHUNK = "The PNG cannot be decoded: its {chunk} chunk is unusable ({why})."
BODY_TOO_LARGE = "The request is larger than {limit} bytes; send a smaller image."
EMPTY_DRAWING = "The canvas looks empty: draw a digit first."
IMAGE_REFUSED = ("The model could not decode the image; the file may be damaged or in a form "
                 "its decoder does not accept ({detail}). Send a plain PNG, JPEG, GIF or BMP.")

SERVING_DOWN = "The model service is not reachable right now. Please try again in a moment."
SERVING_TIMEOUT = "The model service took longer than {seconds:g} s to answer. Please try again."
MODEL_UNAVAILABLE = "The model is not available right now: {detail}"
SERVING_BAD_ANSWER = "The model service gave an answer the web UI could not use: {detail}"

FEEDBACK_NOT_JSON = ("The request body must be a JSON object like {\"prediction_id\": "
                     "\"...\", \"digit\": 4} (digit null: the answer was right).")
FEEDBACK_NO_PREDICTION_ID = ("The \"prediction_id\" field is missing or not a string: send the "
                             "prediction_id that /api/predict answered with.")
FEEDBACK_NO_DIGIT = ("The \"digit\" field is missing: send the right digit (0-9), or null if "
                     "the answer was right.")
FEEDBACK_BAD_DIGIT = "The \"digit\" field must be a whole number from 0 to 9 or null, not {value}."
UNKNOWN_PREDICTION = ("This prediction is not known here (the id is wrong, or the feedback "
                      "store was unavailable when it was made): draw the digit again and "
                      "correct the new answer.")
PREDICTION_TOO_OLD = ("This prediction is older than {minutes:g} minutes and no longer kept: "
                      "draw the digit again and correct the new answer.")
STORE_DOWN = ("The feedback store is not available ({detail}); nothing was stored. Predictions "
              "still work. Check FEEDBACK_DB_URL and that its database is running, then send "
              "the correction again.")
FEEDBACK_OFF = "Feedback is turned off on this server (FEEDBACK=off)."

HOST_NOT_ALLOWED = ("This web UI is not served under the name {host}: use the address its "
                    "operator gave you. Operators: add the name to WEBUI_ALLOWED_HOSTS.")
NO_VALID_HOST = "(none: the Host header is missing or not a valid host)"
NOT_FOUND = "There is no such API endpoint."
METHOD_NOT_ALLOWED = "This API endpoint does not accept {method} requests."
BAD_REQUEST = "The request could not be understood."
INTERNAL = "Something went wrong inside the web UI; the error has been logged."
