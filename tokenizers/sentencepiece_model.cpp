#include "tokenizers/sentencepiece_model.h"

#include <sentencepiece_processor.h>

#include <filesystem>
#include <stdexcept>

#include "framework/io.h"

namespace pgolf {

namespace {
const char* kHowToMake =
    "make one with `pgolf-data train-tokenizer --input FILE... --vocab N --out PREFIX`, or run `make data` "
    "for the default data set";
}

SentencePieceModel::SentencePieceModel(const std::string& path)
    : path_(path), sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  std::error_code ec;
  if (const std::string dir = directory_problem(path, "a tokenizer model file (.model)"); !dir.empty())
    throw std::runtime_error("tokenizer model: " + dir);
  if (!std::filesystem::is_regular_file(path, ec))
    throw std::runtime_error("tokenizer model '" + path + "' does not exist; " + kHowToMake);
  const auto status = sp_->Load(path);
  if (!status.ok())
    throw std::runtime_error("tokenizer model '" + path + "' is not a readable SentencePiece model (" +
                             status.ToString() + "); " + kHowToMake);
}

SentencePieceModel::~SentencePieceModel() = default;

int SentencePieceModel::vocab_size() const { return sp_->GetPieceSize(); }

std::vector<int> SentencePieceModel::encode(const std::string& text) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  if (!status.ok()) throw std::runtime_error(path_ + ": encoding failed (" + status.ToString() + ")");
  return ids;
}

std::vector<std::string> SentencePieceModel::encode_pieces(const std::string& text) const {
  std::vector<std::string> pieces;
  const auto status = sp_->Encode(text, &pieces);
  if (!status.ok()) throw std::runtime_error(path_ + ": encoding failed (" + status.ToString() + ")");
  return pieces;
}

std::vector<PieceSpan> SentencePieceModel::encode_spans(const std::string& text) const {
  sentencepiece::ImmutableSentencePieceText spt;
  const auto status = sp_->Encode(text, spt.mutable_proto());
  if (!status.ok()) throw std::runtime_error(path_ + ": encoding failed (" + status.ToString() + ")");
  std::vector<PieceSpan> out(spt.pieces_size());
  for (size_t i = 0; i < out.size(); ++i) {
    const auto p = spt.pieces(static_cast<int>(i));
    out[i] = PieceSpan{static_cast<int>(p.id()), p.begin(), p.end()};
  }
  return out;
}

std::string SentencePieceModel::decode(const std::vector<int>& ids) const {
  for (int id : ids) check_id(id);
  std::string text;
  const auto status = sp_->Decode(ids, &text);
  if (!status.ok()) throw std::runtime_error(path_ + ": decoding failed (" + status.ToString() + ")");
  return text;
}

void SentencePieceModel::check_id(int id) const {
  if (id < 0 || id >= vocab_size())
    throw std::runtime_error(path_ + ": token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                             std::to_string(vocab_size()) + ")");
}

const std::string& SentencePieceModel::piece(int id) const {
  check_id(id);
  return sp_->IdToPiece(id);
}

PieceType SentencePieceModel::type(int id) const {
  check_id(id);
  if (sp_->IsControl(id)) return PieceType::Control;
  if (sp_->IsUnknown(id)) return PieceType::Unknown;
  if (sp_->IsUnused(id)) return PieceType::Unused;
  if (sp_->IsByte(id)) return PieceType::Byte;
  return PieceType::Normal;
}

bool SentencePieceModel::is_control(int id) const { return type(id) == PieceType::Control; }
bool SentencePieceModel::is_unknown(int id) const { return type(id) == PieceType::Unknown; }
bool SentencePieceModel::is_unused(int id) const { return type(id) == PieceType::Unused; }
bool SentencePieceModel::is_byte(int id) const { return type(id) == PieceType::Byte; }
int SentencePieceModel::bos_id() const { return sp_->bos_id(); }
int SentencePieceModel::eos_id() const { return sp_->eos_id(); }
int SentencePieceModel::pad_id() const { return sp_->pad_id(); }
int SentencePieceModel::unk_id() const { return sp_->unk_id(); }

std::vector<std::string> SentencePieceModel::pieces() const {
  std::vector<std::string> out(vocab_size());
  for (int i = 0; i < vocab_size(); ++i) out[i] = sp_->IdToPiece(i);
  return out;
}

std::vector<PieceType> SentencePieceModel::types() const {
  std::vector<PieceType> out(vocab_size());
  for (int i = 0; i < vocab_size(); ++i) out[i] = type(i);
  return out;
}

}  // namespace pgolf
