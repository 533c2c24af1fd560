"""Raw data files -> InputExample -> InputFeatures -> TFRecords -> tf.data.

The names are those of the original run_classifier.py (InputExample, DataProcessor,
convert_single_example, file_based_convert_examples_to_features,
file_based_input_fn_builder, ...), plus a task-name registry:

  processor = processors.get_processor("emotion")
  examples = processors.get_examples(processor, "train", data_dir)  # GC paused
  processors.load_processor_module("my_processors.py")  # registers user processors
"""

from processors.base import (DataError, DataProcessor, InputExample, InputFeatures,
                             PaddingInputExample, example_sources, get_examples)
from processors.emotion import EmotionProcessor
from processors.features import (_truncate_seq_pair, convert_examples_to_arrays,
                                 convert_examples_to_features, convert_single_example,
                                 file_based_convert_examples_to_features,
                                 token_lengths)
from processors.glue import (ColaProcessor, MnliProcessor, MrpcProcessor,
                             Sst2Processor, XnliProcessor)
from processors.input_pipeline import (EXAMPLE_INDEX, file_based_input_fn_builder,
                                       make_dataset)
from processors.registry import (get_processor, known_tasks, load_processor_module,
                                 register_processor)
from processors.tfrecord import serialize_int64_examples, write_tfrecord_atomic
